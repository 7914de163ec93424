//! The `crisis-pulse` command line: parse, init tracing, load config, hand over to `app`.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand, ValueEnum};

use crisis_pulse::app::{self, Outputs, ReplayOptions, StateOptions};
use crisis_pulse::config::Config;
use crisis_pulse::event::Channel;
use crisis_pulse::http::{Background, HttpState};
use crisis_pulse::logging::{self, LogFormat};
use crisis_pulse::metrics::{LiveMetrics, Metrics};
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
        /// Serve /metrics, /healthz and /readyz here while the demo runs (`off` to disable;
        /// port 0 picks a free port). Default 127.0.0.1:9898, skipped with a warning if busy.
        #[arg(long)]
        http_addr: Option<String>,
        /// Keep serving after the simulation ends, until SIGINT or SIGTERM.
        #[arg(long)]
        hold: bool,
        /// Pace the demo: sleep this many milliseconds per closed 5-minute window, so a
        /// scraper sees the pulse move (0: as fast as possible).
        #[arg(long, default_value_t = 0)]
        realtime_ms_per_window: u64,
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
        /// Resume from the newest checkpoint in DIR (skipping the records it covers) and
        /// save the new state there at the end.
        #[arg(long, value_name = "DIR")]
        state_dir: Option<PathBuf>,
        /// Save a checkpoint to DIR at the end of the replay: a warm start for `run`.
        #[arg(long, value_name = "DIR")]
        save_state: Option<PathBuf>,
        /// Ignore an unusable or unwanted checkpoint in --state-dir and start fresh.
        #[arg(long, requires = "state_dir")]
        reset_state: bool,
    },
    /// Validates a configuration file and prints every problem with its key and line.
    CheckConfig { config: PathBuf },
    /// Scores NAB-format series (`timestamp,value`) with the service's detector, writing
    /// `timestamp,value,anomaly_score`: one file, or a whole tree.
    Backtest {
        /// Configuration whose `[detect]` section is used (default: built-in defaults).
        #[arg(long)]
        config: Option<PathBuf>,
        #[arg(
            long,
            conflicts_with = "series_dir",
            required_unless_present = "series_dir"
        )]
        series: Option<PathBuf>,
        #[arg(long, requires = "series")]
        output: Option<PathBuf>,
        #[arg(long, requires = "output_dir")]
        series_dir: Option<PathBuf>,
        #[arg(long)]
        output_dir: Option<PathBuf>,
    },
    /// Consumes contact topics from Kafka, publishes crisis events and dead letters
    /// (see docs/kafka.md; `CRISIS_PULSE_KAFKA_*` variables override `[kafka]`).
    Run {
        /// Configuration (default: the built-in demo taxonomy with default `[kafka]`).
        #[arg(long)]
        config: Option<PathBuf>,
        /// Listen address for /metrics, /healthz, /readyz (default: `http.addr`).
        #[arg(long)]
        http_addr: Option<String>,
        /// Keep checkpoints here (overrides `[state] dir`): baselines, open windows and
        /// crisis lifecycles survive restarts, and offsets are committed with them.
        #[arg(long, env = "CRISIS_PULSE_STATE_DIR")]
        state_dir: Option<PathBuf>,
        /// Ignore an unusable or unwanted checkpoint and start fresh.
        #[arg(long)]
        reset_state: bool,
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

/// Starts the demo's endpoint. The default address is best effort (another demo may hold
/// it); an address asked for explicitly, or `--hold`, must bind.
fn start_http(
    addr: Option<&str>,
    hold: bool,
    state: &HttpState,
) -> anyhow::Result<Option<Background>> {
    let explicit = addr.is_some() || hold;
    let addr = addr.unwrap_or("127.0.0.1:9898");
    if addr == "off" {
        return Ok(None);
    }
    match Background::start(addr, state.clone()) {
        Ok(b) => Ok(Some(b)),
        Err(e) if !explicit => {
            tracing::warn!(addr, error = %e, "not serving metrics: cannot bind");
            Ok(None)
        }
        Err(e) => Err(e).with_context(|| format!("binding --http-addr {addr}")),
    }
}

fn load_config(path: Option<&Path>) -> anyhow::Result<Config> {
    match path {
        Some(p) => Config::load(p).map_err(|e| anyhow::anyhow!("{e}")),
        None => Config::parse(app::DEMO_CONFIG, "examples/demo.toml")
            .map_err(|e| anyhow::anyhow!("{e}")),
    }
}

/// The crisis output (file or stdout) and the optional windows table of demo and replay.
fn open_sinks(
    output: Option<&Path>,
    windows: Option<&Path>,
    topics: &[String],
) -> anyhow::Result<(Box<dyn Write>, Option<WindowWriter>)> {
    let out = open_output(output)?;
    let ww = windows
        .map(|p| WindowWriter::create(p, topics.to_vec()))
        .transpose()?;
    Ok((out, ww))
}

fn finish_sinks(windows: Option<WindowWriter>, out: &mut Box<dyn Write>) -> anyhow::Result<()> {
    if let Some(w) = windows {
        w.finish()?;
    }
    out.flush()?;
    Ok(())
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
    logging::init(cli.log_format);
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
            http_addr,
            hold,
            realtime_ms_per_window,
        } => {
            let cfg = load_config(config.as_deref())?;
            let mut sim = SimConfig::demo();
            sim.seed = seed;
            sim.duration_ms = i64::from(days) * 86_400_000;
            let topics = cfg.topic_names();
            let (mut out, ww) = open_sinks(output.as_deref(), windows.as_deref(), &topics)?;
            let started = std::time::Instant::now();
            let mut outputs = Outputs {
                crises: &mut out,
                windows: ww,
            };
            let metrics = Metrics::new();
            metrics.init_topics(&topics);
            let state = HttpState::new(metrics.clone());
            let server = start_http(http_addr.as_deref(), hold, &state)?;
            state.set_ready(true);
            let mut live = LiveMetrics::new(metrics)
                .with_pace(std::time::Duration::from_millis(realtime_ms_per_window));
            let (summary, _) = app::demo_observed(sim, &cfg, &mut outputs, &mut live)?;
            finish_sinks(outputs.windows.take(), &mut out)?;
            eprintln!("\n{}", summary.human(&topics));
            eprintln!("finished in {:.1} s", started.elapsed().as_secs_f64());
            match server {
                Some(s) if hold => s.hold(),
                Some(s) => s.stop(),
                None => {}
            }
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
            state_dir,
            save_state,
            reset_state,
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
            let topics = cfg.topic_names();
            let (mut out, ww) = open_sinks(output.as_deref(), windows.as_deref(), &topics)?;
            let mut outputs = Outputs {
                crises: &mut out,
                windows: ww,
            };
            let mut live = LiveMetrics::new(Metrics::new());
            let st = StateOptions {
                state_dir,
                save_state,
                reset: reset_state,
                stop_after: None,
            };
            let (summary, _) = app::replay_with_state(&opts, &st, &cfg, &mut outputs, &mut live)?;
            finish_sinks(outputs.windows.take(), &mut out)?;
            eprintln!("{}", summary.human(&topics));
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Backtest {
            config,
            series,
            output,
            series_dir,
            output_dir,
        } => {
            let detect = match config {
                Some(p) => load_config(Some(&p))?.detect,
                None => Default::default(),
            };
            use crisis_pulse::backtest;
            match (series, output, series_dir, output_dir) {
                (Some(s), Some(o), _, _) => backtest::run_file(&s, &o, &detect)?,
                (_, _, Some(d), Some(o)) => {
                    let n = backtest::run_dir(&d, &o, &detect)?;
                    eprintln!("scored {n} files into {}", o.display());
                }
                _ => anyhow::bail!("give --series and --output, or --series-dir and --output-dir"),
            }
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Run {
            config,
            http_addr,
            state_dir,
            reset_state,
        } => {
            let mut cfg = load_config(config.as_deref())?;
            cfg.kafka.apply_env(std::env::vars());
            if state_dir.is_some() {
                cfg.state.dir = state_dir;
            }
            let problems = cfg.validate();
            anyhow::ensure!(
                problems.is_empty(),
                "invalid configuration:\n{}",
                problems
                    .iter()
                    .map(|p| format!("  {p}"))
                    .collect::<Vec<_>>()
                    .join("\n")
            );
            anyhow::ensure!(
                !reset_state || cfg.state.dir.is_some(),
                "--reset-state needs a state directory"
            );
            anyhow::ensure!(
                cfg.kafka.delivery != crisis_pulse::config::Delivery::ExactlyOnce
                    || cfg.state.dir.is_some(),
                "kafka.delivery = \"exactly-once\" needs a state directory ([state] dir or --state-dir)"
            );
            let opts = crisis_pulse::service::ServiceOptions {
                http_addr,
                reset_state,
                ..Default::default()
            };
            let rt = tokio::runtime::Runtime::new()?;
            // Handlers first: a SIGTERM during start-up is a clean stop, not exit 143.
            let shutdown = {
                let _in_runtime = rt.enter();
                crisis_pulse::service::signal()
            };
            rt.block_on(crisis_pulse::service::run(&cfg, opts, shutdown))?;
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
