//! `mxfer`: many HTTP transfers in parallel, like `curl -Z`, on multixfer.
//!
//! It shares curl's flag names for what it shares with curl: URLs and globs (`f[1-1000]`)
//! as arguments, `-K`/`--config FILE` for a list (`url = ...`, `output = ...`),
//! `--parallel-max N` (50 by default), `-o FILE` (for the next URL), `--output-dir DIR` with
//! `-O` (save under the URL's last path segment), `--max-time`, `--connect-timeout`,
//! `--speed-limit`/`--speed-time`, `-L`/`--max-redirs`, `-H`, `-d`, `-X`, `-I`, `-s`, and for
//! HTTPS (feature `rustls`) `--cacert FILE` and `-k`/`--insecure`. Bodies
//! with no output go to standard output; `-o /dev/null` discards without writing.
//!
//! `mxfer --help` lists every flag. On a terminal a progress line shows what `curl -Z`
//! shows (bytes, speed, transfers done and live, time spent and left), drawn by indicatif; a
//! summary line (transfers, failures, bytes, seconds, req/s) ends the run on standard error.
//!
//! Exit status: 0 when every transfer succeeded, 1 when any failed, 2 for a usage error (an
//! unknown flag or a bad value, named in the message) or a failure to start.

mod options;

use std::collections::VecDeque;
use std::fs::File;
use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use evcore::Loop;
use multixfer::drive::Driver;
use multixfer::{Easy, Flow, Multi, Options as MultiOptions};

use options::{Job, Opts, Output};

fn main() -> ExitCode {
    let opts = match options::parse(std::env::args().skip(1)) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("mxfer: {e}");
            return ExitCode::from(2);
        }
    };
    init_log(opts.verbose);
    match run(opts) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            eprintln!("mxfer: {e}");
            ExitCode::from(2)
        }
    }
}

/// Totals for the summary line.
#[derive(Default)]
struct Totals {
    transfers: u64,
    failures: u64,
    bytes: u64,
}

fn build(opts: &Opts, job: &Job) -> std::io::Result<Easy<String>> {
    let mut easy = Easy::get(job.url.clone())
        .follow_location(opts.follow)
        .max_redirs(opts.max_redirs)
        .connect_timeout(opts.connect_timeout)
        .timeout(opts.max_time)
        .buffer_size(100 * 1024)
        .http_version(opts.version)
        .pipewait(opts.pipewait);
    if let Some(method) = &opts.method {
        easy = easy.method(method.clone());
    }
    if let Some(data) = &opts.data {
        easy = easy.method(opts.method.clone().unwrap_or_else(|| "POST".into())).body(data.clone());
        easy = easy.header("Content-Type", "application/x-www-form-urlencoded");
    }
    if opts.head {
        easy = easy.method("HEAD");
    }
    for (n, v) in &opts.headers {
        easy = easy.header(n.clone(), v.clone());
    }
    if let Some(ca) = &opts.cacert {
        easy = easy.ca_file(ca);
    }
    if opts.insecure {
        easy = easy.verify_peer(false);
    }
    if let Some((limit, time)) = opts.speed_limit {
        easy = easy.low_speed(limit, time);
    }
    easy = match &job.output {
        Output::Discard => easy.discard_body(),
        Output::Stdout => easy.write_function(|b| {
            if std::io::stdout().lock().write_all(b).is_ok() {
                Flow::Continue
            } else {
                Flow::Abort
            }
        }),
        Output::File(path) => {
            let mut file = std::io::BufWriter::with_capacity(256 * 1024, File::create(path)?);
            easy.write_function(move |b| {
                if file.write_all(b).is_ok() {
                    Flow::Continue
                } else {
                    Flow::Abort
                }
            })
        }
    };
    Ok(easy.private(job.url.clone()))
}

fn run(opts: Opts) -> Result<bool, String> {
    let mut jobs: VecDeque<Job> = opts.jobs.iter().cloned().collect();
    let total = jobs.len() as u64;
    let mut multi_opts = MultiOptions::default();
    multi_opts.max_connects = Some(opts.parallel_max.max(16));
    let mut multi: Multi<String> = Multi::with_options(multi_opts).map_err(|e| e.to_string())?;
    let mut lp = Loop::new().map_err(|e| e.to_string())?;
    let mut driver = Driver::new();
    let mut totals = Totals::default();
    let start = Instant::now();
    let bar = if !opts.silent && std::io::stderr().is_terminal() {
        progress(total)
    } else {
        indicatif::ProgressBar::hidden()
    };
    let mut top_up = |multi: &mut Multi<String>, totals: &mut Totals| {
        while multi.running() < opts.parallel_max {
            let Some(job) = jobs.pop_front() else { break };
            match build(&opts, &job) {
                Ok(easy) => {
                    multi.add(easy);
                }
                Err(e) => {
                    totals.transfers += 1;
                    totals.failures += 1;
                    if !opts.silent {
                        eprintln!("mxfer: {}: {e}", job.url);
                    }
                }
            }
        }
    };
    top_up(&mut multi, &mut totals);
    while multi.running() > 0 || multi.info_read_pending() {
        let mut finished = Vec::new();
        driver
            .step(&mut multi, &mut lp, Some(Duration::from_millis(100)), &mut |d| finished.push(d))
            .map_err(|e| e.to_string())?;
        for d in finished {
            totals.transfers += 1;
            match d.result {
                Ok(r) => totals.bytes += r.downloaded,
                Err(e) => {
                    totals.failures += 1;
                    if !opts.silent {
                        eprintln!("mxfer: {}: {e}", d.private);
                    }
                }
            }
        }
        top_up(&mut multi, &mut totals);
        if !bar.is_hidden() {
            bar.set_position(totals.transfers);
            bar.set_message(format!("{} live, {} bytes", multi.running(), totals.bytes));
        }
    }
    bar.finish_and_clear();
    std::io::stdout().flush().map_err(|e| e.to_string())?;
    let secs = start.elapsed().as_secs_f64();
    if !opts.silent || totals.failures > 0 {
        eprintln!(
            "transfers {} failures {} bytes {} seconds {:.3} req/s {:.0}",
            totals.transfers,
            totals.failures,
            totals.bytes,
            secs,
            totals.transfers as f64 / secs.max(1e-9)
        );
    }
    Ok(totals.failures == 0)
}

/// The progress line, as `curl -Z` draws one: transfers done of all, live ones and bytes so
/// far (the message), rate, time spent and left. Drawn at most 10 times a second.
fn progress(total: u64) -> indicatif::ProgressBar {
    let bar = indicatif::ProgressBar::new(total);
    let style = indicatif::ProgressStyle::with_template(
        "[{bar:30}] {pos}/{len} done, {msg}, {per_sec}, {elapsed} spent, {eta} left",
    )
    .expect("a valid template")
    .progress_chars("#>-");
    bar.set_style(style);
    bar
}

/// Warnings and errors of the engine on standard error (-v: debug, -vv: trace; `RUST_LOG`
/// over both).
fn init_log(verbose: u8) {
    let mut log = env_logger::Builder::new();
    log.filter_level(match verbose {
        0 => log::LevelFilter::Warn,
        1 => log::LevelFilter::Debug,
        _ => log::LevelFilter::Trace,
    });
    if let Ok(spec) = std::env::var("RUST_LOG") {
        log.parse_filters(&spec);
    }
    log.init();
}

/// Where `--output-dir` with `-O` puts a URL's body.
fn remote_name(dir: &std::path::Path, url: &str) -> PathBuf {
    let path = url.split(['?', '#']).next().unwrap_or_default();
    let name = path.rsplit('/').next().filter(|n| !n.is_empty()).unwrap_or("index.html");
    dir.join(name)
}
