//! Whisper model provisioning: download official ggml files, import CTranslate2
//! (faster-whisper) models, list installed models, and the default model location.
//!
//! These are the library halves of `calltone model fetch|import-ct2|list`.

use std::fs::{self, File};
use std::io::{self, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

use sha1::{Digest, Sha1};

use super::ct2::{Ct2Error, Ct2Model};
use super::ggml::{self, ConvertError, HeaderError, Hparams};

/// Directory for models, relative to the working directory.
pub const MODELS_DIR: &str = "models";
/// Name of the model used when neither `--model` nor `asr.model` is given.
pub const DEFAULT_MODEL: &str = "tiny.en";

/// Official ggml Whisper models on Hugging Face and their SHA-1 checksums (from whisper.cpp's
/// `models/README.md` and the Hugging Face repository's model card, quantised files included).
pub const KNOWN_MODELS: &[(&str, &str)] = &[
    ("tiny", "bd577a113a864445d4c299885e0cb97d4ba92b5f"),
    ("tiny-q5_1", "2827a03e495b1ed3048ef28a6a4620537db4ee51"),
    ("tiny-q8_0", "19e8118f6652a650569f5a949d962154e01571d9"),
    ("tiny.en", "c78c86eb1a8faa21b369bcd33207cc90d64ae9df"),
    ("tiny.en-q5_1", "3fb92ec865cbbc769f08137f22470d6b66e071b6"),
    ("tiny.en-q8_0", "802d6668e7d411123e672abe4cb6c18f12306abb"),
    ("base", "465707469ff3a37a2b9b8d8f89f2f99de7299dac"),
    ("base-q5_1", "a3733eda680ef76256db5fc5dd9de8629e62c5e7"),
    ("base-q8_0", "7bb89bb49ed6955013b166f1b6a6c04584a20fbe"),
    ("base.en", "137c40403d78fd54d454da0f9bd998f78703390c"),
    ("base.en-q5_1", "d26d7ce5a1b6e57bea5d0431b9c20ae49423c94a"),
    ("base.en-q8_0", "bb1574182e9b924452bf0cd1510ac034d323e948"),
    ("small", "55356645c2b361a969dfd0ef2c5a50d530afd8d5"),
    ("small-q5_1", "6fe57ddcfdd1c6b07cdcc73aaf620810ce5fc771"),
    ("small-q8_0", "bcad8a2083f4e53d648d586b7dbc0cd673d8afad"),
    ("small.en", "db8a495a91d927739e50b3fc1cc4c6b8f6c2d022"),
    ("small.en-q5_1", "20f54878d608f94e4a8ee3ae56016571d47cba34"),
    ("small.en-q8_0", "9d75ff4ccfa0a8217870d7405cf8cef0a5579852"),
    ("small.en-tdrz", "b6c6e7e89af1a35c08e6de56b66ca6a02a2fdfa1"),
    ("medium", "fd9727b6e1217c2f614f9b698455c4ffd82463b4"),
    ("medium.en", "8c30f0e44ce9560643ebd10bbe50cd20eafd3723"),
    ("large-v1", "b1caaf735c4cc1429223d5a74f0f4d0b9b59a299"),
    ("large-v2", "0f4c8e34f21cf1a914c59d8b3ce882345ad349d6"),
    ("large-v2-q5_0", "00e39f2196344e901b3a2bd5814807a769bd1630"),
    ("large-v3", "ad82bf6a9043ceed055076d0fd39f5f186ff8062"),
    ("large-v3-q5_0", "e6e2ed78495d403bef4b7cff42ef4aaadcfea8de"),
];

/// Where official ggml files are downloaded from (`{name}` is replaced).
pub const DOWNLOAD_URL: &str =
    "https://huggingface.co/ggerganov/whisper.cpp/resolve/main/ggml-{name}.bin";

/// Everything that can go wrong while provisioning a model. Messages are one line and name
/// the file or model concerned.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ModelError {
    #[error("unknown model {name:?}; known models: {known}")]
    UnknownModel { name: String, known: String },
    #[error("{}: {source}", path.display())]
    Io { path: PathBuf, source: io::Error },
    #[error(transparent)]
    Ct2(#[from] Ct2Error),
    #[error("{}: {source}", path.display())]
    Convert { path: PathBuf, source: ConvertError },
    #[error("{}: {problem}", path.display())]
    BadInput { path: PathBuf, problem: String },
    #[error("{}: {source}", path.display())]
    BadModel { path: PathBuf, source: HeaderError },
    #[error("downloading {url}: {message}")]
    Download { url: String, message: String },
    #[error("{}: SHA-1 {got} does not match the official {expected}; the download is corrupt (removed)", path.display())]
    Checksum {
        path: PathBuf,
        expected: String,
        got: String,
    },
}

impl ModelError {
    /// Whether the error is the user's input (exit code 2) rather than an internal or
    /// environmental failure (exit code 1).
    pub fn is_bad_input(&self) -> bool {
        matches!(
            self,
            Self::UnknownModel { .. }
                | Self::Ct2(_)
                | Self::Convert { .. }
                | Self::BadInput { .. }
                | Self::BadModel { .. }
        )
    }
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> ModelError + '_ {
    move |source| ModelError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// `models/ggml-tiny.en.bin`, the model used when neither `--model` nor `asr.model` is set.
pub fn default_model_path() -> PathBuf {
    Path::new(MODELS_DIR).join(format!("ggml-{DEFAULT_MODEL}.bin"))
}

/// The model to use: `--model` if given, else the config's `asr.model`, else
/// [`default_model_path`].
pub fn resolve_model_path(cli: Option<&Path>, config: Option<&Path>) -> PathBuf {
    cli.or(config)
        .map(Path::to_path_buf)
        .unwrap_or_else(default_model_path)
}

/// Check that `path` is a readable ggml Whisper model and return its header.
pub fn check_model(path: &Path) -> Result<Hparams, ModelError> {
    let f = File::open(path).map_err(io_err(path))?;
    ggml::read_header(io::BufReader::new(f)).map_err(|source| ModelError::BadModel {
        path: path.to_path_buf(),
        source,
    })
}

// ---------------------------------------------------------------------------------------------
// Atomic writes

/// A file written next to its destination and renamed into place on [`commit`]; removed if
/// dropped uncommitted.
struct PendingFile {
    tmp: PathBuf,
    dest: PathBuf,
    done: bool,
}

impl PendingFile {
    fn create(dest: &Path) -> Result<(Self, File), ModelError> {
        let dir = dest.parent().filter(|p| !p.as_os_str().is_empty());
        if let Some(dir) = dir {
            fs::create_dir_all(dir).map_err(io_err(dir))?;
        }
        let mut tmp_name = dest.file_name().unwrap_or_default().to_os_string();
        tmp_name.push(format!(".part{}", std::process::id()));
        let tmp = dest.with_file_name(tmp_name);
        let file = File::create(&tmp).map_err(io_err(&tmp))?;
        Ok((
            Self {
                tmp,
                dest: dest.to_path_buf(),
                done: false,
            },
            file,
        ))
    }

    fn commit(mut self, file: File) -> Result<PathBuf, ModelError> {
        file.sync_all().map_err(io_err(&self.tmp))?;
        drop(file);
        fs::rename(&self.tmp, &self.dest).map_err(io_err(&self.dest))?;
        self.done = true;
        Ok(self.dest.clone())
    }
}

impl Drop for PendingFile {
    fn drop(&mut self) {
        if !self.done {
            let _ = fs::remove_file(&self.tmp);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// CTranslate2 import

/// The files of a CTranslate2 model, read into memory.
struct Ct2Files {
    /// Where `model.bin` came from (for messages), e.g. `x.whl!pkg/model/model.bin`.
    origin: PathBuf,
    model_bin: Vec<u8>,
    vocabulary: Vec<String>,
}

fn parse_vocabulary(text: &str, json: bool, origin: &Path) -> Result<Vec<String>, ModelError> {
    if json {
        serde_json::from_str::<Vec<String>>(text).map_err(|e| ModelError::BadInput {
            path: origin.to_path_buf(),
            problem: format!("vocabulary.json is not a JSON list of strings: {e}"),
        })
    } else {
        // One token per line; byte-level BPE tokens never contain raw whitespace.
        let text = text.strip_suffix('\n').unwrap_or(text);
        Ok(text
            .split('\n')
            .map(|l| l.strip_suffix('\r').unwrap_or(l).to_string())
            .collect())
    }
}

fn read_ct2_dir(dir: &Path) -> Result<Ct2Files, ModelError> {
    let model = dir.join("model.bin");
    if !model.is_file() {
        return Err(ModelError::BadInput {
            path: dir.to_path_buf(),
            problem: "no model.bin here; expected a CTranslate2 model directory".into(),
        });
    }
    let (vocab_path, json) = if dir.join("vocabulary.txt").is_file() {
        (dir.join("vocabulary.txt"), false)
    } else if dir.join("vocabulary.json").is_file() {
        (dir.join("vocabulary.json"), true)
    } else {
        return Err(ModelError::BadInput {
            path: dir.to_path_buf(),
            problem: "no vocabulary.txt or vocabulary.json next to model.bin".into(),
        });
    };
    let text = fs::read_to_string(&vocab_path).map_err(io_err(&vocab_path))?;
    Ok(Ct2Files {
        model_bin: fs::read(&model).map_err(io_err(&model))?,
        vocabulary: parse_vocabulary(&text, json, &vocab_path)?,
        origin: model,
    })
}

fn read_ct2_zip(path: &Path) -> Result<Ct2Files, ModelError> {
    let bad = |problem: String| ModelError::BadInput {
        path: path.to_path_buf(),
        problem,
    };
    let file = File::open(path).map_err(io_err(path))?;
    let mut zip = zip::ZipArchive::new(io::BufReader::new(file))
        .map_err(|e| bad(format!("not a readable zip/wheel archive: {e}")))?;
    let names: Vec<String> = zip.file_names().map(str::to_string).collect();
    let has = |n: &str| names.iter().any(|x| x == n);
    // The first directory (shallowest) holding model.bin and a vocabulary.
    let mut candidates: Vec<(String, &str)> = names
        .iter()
        .filter_map(|n| n.strip_suffix("model.bin"))
        .filter(|prefix| prefix.is_empty() || prefix.ends_with('/'))
        .filter_map(|prefix| {
            ["vocabulary.txt", "vocabulary.json"]
                .into_iter()
                .find(|v| has(&format!("{prefix}{v}")))
                .map(|v| (prefix.to_string(), v))
        })
        .collect();
    candidates.sort_by_key(|(p, _)| (p.matches('/').count(), p.clone()));
    let Some((prefix, vocab)) = candidates.into_iter().next() else {
        return Err(bad(
            "no CTranslate2 model (model.bin + vocabulary.txt) inside this archive".into(),
        ));
    };
    let mut read = |name: &str| -> Result<Vec<u8>, ModelError> {
        let mut f = zip
            .by_name(name)
            .map_err(|e| bad(format!("cannot read {name}: {e}")))?;
        let mut buf = Vec::with_capacity(f.size() as usize);
        f.read_to_end(&mut buf)
            .map_err(|e| bad(format!("cannot read {name}: {e}")))?;
        Ok(buf)
    };
    let model_bin = read(&format!("{prefix}model.bin"))?;
    let vocab_name = format!("{prefix}{vocab}");
    let vocab_bytes = read(&vocab_name)?;
    let origin = PathBuf::from(format!("{}!{prefix}model.bin", path.display()));
    let text = String::from_utf8(vocab_bytes)
        .map_err(|_| bad(format!("{vocab_name} is not UTF-8 text")))?;
    Ok(Ct2Files {
        vocabulary: parse_vocabulary(&text, vocab.ends_with(".json"), &origin)?,
        model_bin,
        origin,
    })
}

fn read_ct2_input(path: &Path) -> Result<Ct2Files, ModelError> {
    let meta = fs::metadata(path).map_err(io_err(path))?;
    if meta.is_dir() {
        return read_ct2_dir(path);
    }
    if path.file_name().is_some_and(|n| n == "model.bin") {
        return read_ct2_dir(path.parent().unwrap_or(Path::new(".")));
    }
    let mut magic = [0u8; 4];
    let mut f = File::open(path).map_err(io_err(path))?;
    let n = f.read(&mut magic).map_err(io_err(path))?;
    if n == 4 && &magic == b"PK\x03\x04" {
        return read_ct2_zip(path);
    }
    Err(ModelError::BadInput {
        path: path.to_path_buf(),
        problem:
            "expected a CTranslate2 model directory, its model.bin, or a .whl/.zip containing one"
                .into(),
    })
}

/// Convert a CTranslate2 Whisper model to a ggml file whisper.cpp can load.
///
/// `path` is a CTranslate2 model directory (model.bin + vocabulary.txt/.json + config.json),
/// its `model.bin`, or a `.whl`/`.zip` that contains such a directory. The output defaults to
/// `models/ggml-NAME.bin`, NAME derived from the model's shape (e.g. `tiny.en`, or
/// `tiny.en-q8_0` when quantised, as whisper.cpp names its files). The file is written to a
/// temporary name and renamed into place, so readers never see a partial file. `weights` is
/// the storage of the weight matrices (f16, or ggml's q8_0 / q5_1 blocks).
/// Returns the path written.
pub fn import_ct2(
    path: &Path,
    out: Option<&Path>,
    weights: ggml::WeightType,
) -> Result<PathBuf, ModelError> {
    let started = Instant::now();
    let files = read_ct2_input(path)?;
    let model = Ct2Model::parse(&files.model_bin, &files.origin)?;
    drop(files.model_bin);
    let conv = |source| ModelError::Convert {
        path: files.origin.clone(),
        source,
    };
    let hparams = ggml::hparams_from_ct2(&model).map_err(conv)?;
    // The vocabulary lists every token id, special tokens included.
    if files.vocabulary.len() != hparams.n_vocab as usize {
        return Err(conv(ConvertError::VocabSize {
            got: files.vocabulary.len(),
            expected: hparams.n_vocab as usize,
        }));
    }
    let vocab = ggml::ggml_vocab(&files.vocabulary).map_err(conv)?;
    let dest = match out {
        Some(p) => p.to_path_buf(),
        None => {
            let suffix = match weights {
                ggml::WeightType::F16 => "",
                ggml::WeightType::Q8_0 => "-q8_0",
                ggml::WeightType::Q5_1 => "-q5_1",
            };
            Path::new(MODELS_DIR).join(format!("ggml-{}{suffix}.bin", hparams.model_type()))
        }
    };
    let (pending, file) = PendingFile::create(&dest)?;
    let mut w = BufWriter::with_capacity(1 << 20, file);
    let (h, n_tensors) =
        ggml::write_ggml(&model, &vocab, weights, &mut w).map_err(|e| match e {
            ConvertError::Io(source) => ModelError::Io {
                path: pending.tmp.clone(),
                source,
            },
            other => conv(other),
        })?;
    let file = w
        .into_inner()
        .map_err(|e| io_err(&pending.tmp)(e.into_error()))?;
    let written = pending.commit(file)?;
    // Verify what was written reads back as a ggml model.
    check_model(&written)?;
    tracing::info!(
        model = %h.model_type(),
        weights = %h.ftype_name(),
        tensors = n_tensors,
        vocab = vocab.len(),
        out = %written.display(),
        secs = started.elapsed().as_secs_f32(),
        "imported CTranslate2 model"
    );
    Ok(written)
}

// ---------------------------------------------------------------------------------------------
// Download

fn sha1_file(path: &Path) -> Result<String, ModelError> {
    let mut f = File::open(path).map_err(io_err(path))?;
    let mut h = Sha1::new();
    io::copy(&mut f, &mut h).map_err(io_err(path))?;
    Ok(hex(&h.finalize()))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The official SHA-1 of a known model name.
pub fn known_sha1(name: &str) -> Option<&'static str> {
    KNOWN_MODELS
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, s)| *s)
}

/// Download the official ggml model `name` (e.g. `tiny.en`) into `dir` as `ggml-NAME.bin`,
/// verifying its SHA-1; with `progress`, draw a progress bar on stderr. If a file with the
/// right checksum is already there, nothing is downloaded. The file appears only once
/// complete and verified. Returns its path.
pub fn fetch(name: &str, dir: &Path, progress: bool) -> Result<PathBuf, ModelError> {
    let expected = known_sha1(name).ok_or_else(|| ModelError::UnknownModel {
        name: name.to_string(),
        known: KNOWN_MODELS
            .iter()
            .map(|(n, _)| *n)
            .collect::<Vec<_>>()
            .join(", "),
    })?;
    let dest = dir.join(format!("ggml-{name}.bin"));
    if dest.is_file() && sha1_file(&dest)? == expected {
        tracing::info!(path = %dest.display(), "model already present and verified");
        return Ok(dest);
    }
    let url = DOWNLOAD_URL.replace("{name}", name);
    let dl_err = |message: String| ModelError::Download {
        url: url.clone(),
        message,
    };
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_connect(Some(std::time::Duration::from_secs(30)))
        .timeout_recv_body(None)
        .build()
        .into();
    let mut resp = agent.get(&url).call().map_err(|e| dl_err(e.to_string()))?;
    let total = resp.body().content_length();

    let (pending, file) = PendingFile::create(&dest)?;
    let bar = if progress {
        let bar = indicatif::ProgressBar::new(total.unwrap_or(0));
        if let Ok(style) = indicatif::ProgressStyle::with_template(
            "{msg} [{bar:40}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
        ) {
            bar.set_style(style.progress_chars("=> "));
        }
        bar.set_message(format!("ggml-{name}.bin"));
        bar
    } else {
        indicatif::ProgressBar::hidden()
    };
    let mut reader = bar.wrap_read(resp.body_mut().as_reader());
    let mut w = BufWriter::with_capacity(1 << 20, file);
    let mut hasher = Sha1::new();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = match reader.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => {
                bar.abandon();
                return Err(dl_err(e.to_string()));
            }
        };
        hasher.update(&buf[..n]);
        w.write_all(&buf[..n]).map_err(io_err(&pending.tmp))?;
    }
    bar.finish_and_clear();
    let file = w
        .into_inner()
        .map_err(|e| io_err(&pending.tmp)(e.into_error()))?;
    let got = hex(&hasher.finalize());
    if got != expected {
        return Err(ModelError::Checksum {
            path: dest,
            expected: expected.to_string(),
            got,
        });
    }
    pending.commit(file)
}

// ---------------------------------------------------------------------------------------------
// Listing

/// A model file found by [`list`].
#[derive(Debug, Clone)]
pub struct InstalledModel {
    /// `NAME` from `ggml-NAME.bin`.
    pub name: String,
    pub path: PathBuf,
    /// File size in bytes.
    pub size: u64,
    /// The header, when the file is a readable ggml Whisper model.
    pub hparams: Option<Hparams>,
    /// Why the header could not be read, otherwise.
    pub problem: Option<String>,
}

impl InstalledModel {
    /// One human line: name, type, weight type, dims, size.
    pub fn describe(&self) -> String {
        let mib = self.size as f64 / (1024.0 * 1024.0);
        match (&self.hparams, &self.problem) {
            (Some(h), _) => format!(
                "{:<16} {:<9} {:<5} d={} layers={}+{} heads={} mels={} vocab={} {:>7.1} MiB  {}",
                self.name,
                h.model_type(),
                h.ftype_name(),
                h.n_audio_state,
                h.n_audio_layer,
                h.n_text_layer,
                h.n_audio_head,
                h.n_mels,
                h.n_vocab,
                mib,
                self.path.display()
            ),
            (None, p) => format!(
                "{:<16} INVALID ({}) {:>7.1} MiB  {}",
                self.name,
                p.as_deref().unwrap_or("unreadable"),
                mib,
                self.path.display()
            ),
        }
    }
}

/// The `ggml-*.bin` files in `dir`, sorted by name, each with its header. A missing
/// directory gives an empty list.
pub fn list(dir: &Path) -> Result<Vec<InstalledModel>, ModelError> {
    let entries = match fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io_err(dir)(e)),
    };
    let mut out = Vec::new();
    for entry in entries {
        let entry = entry.map_err(io_err(dir))?;
        let path = entry.path();
        let Some(fname) = path.file_name().and_then(|n| n.to_str()) else {
            continue;
        };
        let Some(name) = fname
            .strip_prefix("ggml-")
            .and_then(|n| n.strip_suffix(".bin"))
        else {
            continue;
        };
        let Ok(meta) = entry.metadata() else { continue };
        if !meta.is_file() {
            continue;
        }
        let (hparams, problem) = match check_model(&path) {
            Ok(h) => (Some(h), None),
            Err(ModelError::BadModel { source, .. }) => (None, Some(source.to_string())),
            Err(e) => (None, Some(e.to_string())),
        };
        out.push(InstalledModel {
            name: name.to_string(),
            path,
            size: meta.len(),
            hparams,
            problem,
        });
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}
