//! The `crisis-pulse` command line: parse, init tracing, load config, hand over to `app`.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand, ValueEnum};

use crisis_pulse::app::{self, Outputs, ReplayOptions};
use crisis_pulse::config::Config;
use crisis_pulse::event::Channel;
use crisis_pulse::sink::windows::WindowWriter;
use crisis_pulse::source::file::{Format, Mapping};
use crisis_pulse::source::sim::SimConfig;

#[derive(Parser)]
#[command(
    name = "crisis-pulse",
    version,
    about = "Detects complaint waves in contact-centre streams"
)]
struct Cli {
    /// Log format.
    #[arg(
        long,
        global = true,
        value_enum,
        env = "CRISIS_PULSE_LOG_FORMAT",
        default_value = "text"
    )]
    log_format: LogFormat,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Clone, Copy, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Subcommand)]
enum Cmd {
    /// Runs the built-in simulator (two weeks of multi-channel traffic with injected crises)
    /// through the real pipeline; prints crisis events as JSON lines and a summary.
    Demo {
        /// Configuration (default: the built-in demo taxonomy, examples/demo.toml).
        #[arg(long)]
        config: Option<PathBuf>,
        /// Write crisis events here instead of stdout.
        #[arg(long)]
        output: Option<PathBuf>,
        /// Write every closed window to this .csv or .parquet file.
        #[arg(long)]
        windows: Option<PathBuf>,
        /// Simulated days.
        #[arg(long, default_value_t = 14)]
        days: u32,
        /// Simulator seed.
        #[arg(long, default_value_t = 42)]
        seed: u64,
    },
    /// Replays a file of contact events (NDJSON, CSV or Parquet) in event time.
    Replay {
        #[arg(long)]
        config: PathBuf,
        #[arg(long)]
        input: PathBuf,
        /// Input format (default: from the extension).
        #[arg(long, value_enum)]
        format: Option<FormatArg>,
        /// Write crisis events here instead of stdout.
        #[arg(long)]
        output: Option<PathBuf>,
        /// Write every closed window to this .csv or .parquet file.
        #[arg(long)]
        windows: Option<PathBuf>,
        /// Map a field to a column of a CSV/Parquet input: `--column id=tweet_id`.
        #[arg(long = "column", value_parser = parse_kv)]
        columns: Vec<(String, String)>,
        /// Keep only rows where a column equals a value: `--where airline=Southwest`.
        #[arg(long = "where", value_parser = parse_kv)]
        filters: Vec<(String, String)>,
        /// Channel for records that name none.
        #[arg(long)]
        default_channel: Option<String>,
    },
    /// Validates a configuration file and prints every problem with its key and line.
    CheckConfig { config: PathBuf },
    /// Consumes contact topics from Kafka, publishes crisis events and dead letters
    /// (see docs/kafka.md; `CRISIS_PULSE_KAFKA_*` variables override `[kafka]`).
    Run {
        /// Configuration (default: the built-in demo taxonomy with default `[kafka]`).
        #[arg(long)]
        config: Option<PathBuf>,
        /// Listen address for /metrics, /healthz, /readyz (default: `http.addr`).
        #[arg(long)]
        http_addr: Option<String>,
    },
    /// Produces simulator traffic to `contacts.<channel>` topics (created if missing).
    Simulate {
        #[arg(
            long,
            env = "CRISIS_PULSE_KAFKA_BROKERS",
            default_value = "127.0.0.1:9092"
        )]
        brokers: String,
        /// Events per wall second (0: as fast as possible).
        #[arg(long, default_value_t = 100.0)]
        rate: f64,
        /// Wall-clock duration, e.g. `10m` (default: until interrupted).
        #[arg(long)]
        duration: Option<humantime::Duration>,
        /// Simulated seconds per wall second.
        #[arg(long, default_value_t = 1.0)]
        speedup: f64,
        #[arg(long, default_value_t = 42)]
        seed: u64,
        /// Partitions of the topics it creates.
        #[arg(long, default_value_t = 4)]
        partitions: i32,
        #[arg(long, default_value = "contacts.")]
        topic_prefix: String,
    },
    /// Kafka administration: `ping` waits for the broker; `create-topics` creates topics.
    Kafka {
        #[arg(
            long,
            env = "CRISIS_PULSE_KAFKA_BROKERS",
            default_value = "127.0.0.1:9092"
        )]
        brokers: String,
        #[command(subcommand)]
        op: KafkaOp,
    },
}

#[derive(Subcommand)]
enum KafkaOp {
    /// Exits 0 once the broker answers a metadata request.
    Ping {
        #[arg(long, default_value = "30s")]
        timeout: humantime::Duration,
    },
    /// Creates topics that do not exist.
    CreateTopics {
        #[arg(long, default_value_t = 4)]
        partitions: i32,
        topics: Vec<String>,
    },
}

#[derive(Clone, Copy, ValueEnum)]
enum FormatArg {
    Ndjson,
    Csv,
    Parquet,
}

fn parse_kv(s: &str) -> Result<(String, String), String> {
    let (k, v) = s
        .split_once('=')
        .ok_or_else(|| format!("expected KEY=VALUE, got {s:?}"))?;
    Ok((k.trim().to_string(), v.to_string()))
}

fn init_tracing(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let b = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => b.init(),
        LogFormat::Json => b.json().init(),
    }
}

fn load_config(path: Option<&Path>) -> anyhow::Result<Config> {
    match path {
        Some(p) => Config::load(p).map_err(|e| anyhow::anyhow!("{e}")),
        None => Config::parse(app::DEMO_CONFIG, "examples/demo.toml")
            .map_err(|e| anyhow::anyhow!("{e}")),
    }
}

fn open_output(path: Option<&Path>) -> anyhow::Result<Box<dyn Write>> {
    Ok(match path {
        Some(p) => Box::new(std::io::BufWriter::new(
            std::fs::File::create(p).with_context(|| format!("creating {}", p.display()))?,
        )),
        None => Box::new(std::io::BufWriter::new(std::io::stdout().lock())),
    })
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_tracing(cli.log_format);
    match run(cli.cmd) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(1)
        }
    }
}

fn run(cmd: Cmd) -> anyhow::Result<ExitCode> {
    match cmd {
        Cmd::Demo {
            config,
            output,
            windows,
            days,
            seed,
        } => {
            let cfg = load_config(config.as_deref())?;
            let mut sim = SimConfig::demo();
            sim.seed = seed;
            sim.duration_ms = i64::from(days) * 86_400_000;
            let topics = crisis_pulse::classify::Classifier::new(&cfg.topics, &cfg.complaint)?
                .topics()
                .to_vec();
            let mut out = open_output(output.as_deref())?;
            let ww = windows
                .as_deref()
                .map(|p| WindowWriter::create(p, topics.clone()))
                .transpose()?;
            let started = std::time::Instant::now();
            let mut outputs = Outputs {
                crises: &mut out,
                windows: ww,
            };
            let (summary, _) = app::demo(sim, &cfg, &mut outputs)?;
            if let Some(w) = outputs.windows.take() {
                w.finish()?;
            }
            out.flush()?;
            eprintln!("\n{}", summary.human(&topics));
            eprintln!("finished in {:.1} s", started.elapsed().as_secs_f64());
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Replay {
            config,
            input,
            format,
            output,
            windows,
            columns,
            filters,
            default_channel,
        } => {
            let cfg = load_config(Some(&config))?;
            let default_channel = default_channel
                .map(|c| Channel::parse(&c).with_context(|| format!("unknown channel {c:?}")))
                .transpose()?;
            let opts = ReplayOptions {
                input,
                format: format.map(|f| match f {
                    FormatArg::Ndjson => Format::Ndjson,
                    FormatArg::Csv => Format::Csv,
                    FormatArg::Parquet => Format::Parquet,
                }),
                mapping: Mapping {
                    columns: columns.into_iter().collect(),
                    filters,
                },
                default_channel,
            };
            let topics = crisis_pulse::classify::Classifier::new(&cfg.topics, &cfg.complaint)?
                .topics()
                .to_vec();
            let mut out = open_output(output.as_deref())?;
            let ww = windows
                .as_deref()
                .map(|p| WindowWriter::create(p, topics.clone()))
                .transpose()?;
            let mut outputs = Outputs {
                crises: &mut out,
                windows: ww,
            };
            let (summary, _) = app::replay(&opts, &cfg, &mut outputs)?;
            if let Some(w) = outputs.windows.take() {
                w.finish()?;
            }
            out.flush()?;
            eprintln!("{}", summary.human(&topics));
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Run { config, http_addr } => {
            let mut cfg = load_config(config.as_deref())?;
            cfg.kafka.apply_env(std::env::vars());
            let problems = cfg.validate();
            anyhow::ensure!(problems.is_empty(), "invalid configuration: {problems:?}");
            let opts = crisis_pulse::service::ServiceOptions {
                http_addr,
                windows: None,
            };
            tokio::runtime::Runtime::new()?.block_on(crisis_pulse::service::run(
                &cfg,
                opts,
                crisis_pulse::service::signal(),
            ))?;
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Simulate {
            brokers,
            rate,
            duration,
            speedup,
            seed,
            partitions,
            topic_prefix,
        } => {
            let mut kafka = crisis_pulse::config::KafkaConfig::default();
            kafka.apply_env(std::env::vars());
            kafka.brokers = brokers;
            let opts = crisis_pulse::simulate::SimulateOptions {
                kafka,
                rate,
                duration: duration.map(Into::into),
                speedup,
                seed,
                partitions,
                topic_prefix,
            };
            let stop = crisis_pulse::simulate::stop_on_signal();
            crisis_pulse::simulate::run(&opts, &stop)?;
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Kafka { brokers, op } => {
            let mut kafka = crisis_pulse::config::KafkaConfig::default();
            kafka.apply_env(std::env::vars());
            kafka.brokers = brokers;
            match op {
                KafkaOp::Ping { timeout } => {
                    let n = crisis_pulse::admin::wait_ready(&kafka, timeout.into())?;
                    println!("{}: {n} broker(s)", kafka.brokers);
                }
                KafkaOp::CreateTopics { partitions, topics } => {
                    let names: Vec<&str> = topics.iter().map(String::as_str).collect();
                    futures::executor::block_on(crisis_pulse::admin::ensure_topics(
                        &kafka, &names, partitions,
                    ))?;
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Cmd::CheckConfig { config } => match Config::load(&config) {
            Ok(cfg) => {
                println!(
                    "{}: ok ({} topics, window {}, sensitivity {:?})",
                    config.display(),
                    cfg.topics.len(),
                    cfg.window.size,
                    cfg.detect.sensitivity
                );
                Ok(ExitCode::SUCCESS)
            }
            Err(problems) => {
                eprint!("{problems}");
                Ok(ExitCode::from(2))
            }
        },
    }
}
