//! Command-line and `-K` config parsing, with curl's names, through clap.
//!
//! As in curl, the n-th output (from `-o` or a config file's `output`) goes with the n-th URL
//! (from the arguments, `--url` or a config file's `url`), in the order they were given.

use std::path::PathBuf;
use std::time::Duration;

use clap::{ArgAction, CommandFactory, FromArgMatches, Parser};
use multixfer::HttpVersion;

/// Where one transfer's body goes.
#[derive(Clone, Debug)]
pub(crate) enum Output {
    Stdout,
    Discard,
    File(PathBuf),
}

#[derive(Clone, Debug)]
pub(crate) struct Job {
    pub(crate) url: String,
    pub(crate) output: Output,
}

/// Many HTTP transfers in parallel, like `curl -Z`, with curl's flag names.
#[derive(Parser, Debug)]
#[command(name = "mxfer", version)]
struct Args {
    /// URLs to fetch; globs such as `f[1-1000]` and `{a,b}` expand as in curl.
    #[arg(value_name = "URL")]
    urls: Vec<String>,
    /// A URL to fetch (repeatable).
    #[arg(long = "url", value_name = "URL")]
    url_flags: Vec<String>,
    /// Read URLs and outputs from FILE (`url = "..."`, `output = "..."`, one per line).
    #[arg(short = 'K', long = "config", value_name = "FILE")]
    configs: Vec<String>,
    /// Transfer in parallel (always on).
    #[arg(short = 'Z', long)]
    parallel: bool,
    /// Open a connection for each transfer at once, rather than waiting for one that may
    /// multiplex (HTTP/2) to be set up.
    #[arg(long)]
    parallel_immediate: bool,
    /// Speak HTTP/1.1 only (over TLS, ALPN offers `http/1.1` alone).
    #[arg(long = "http1.1", overrides_with_all = ["http2", "http2_prior_knowledge"])]
    http1_1: bool,
    /// HTTP/2 over TLS when the server picks it, HTTP/1.1 otherwise (the default; on
    /// cleartext HTTP/1.1, with no Upgrade attempt).
    #[arg(long = "http2", overrides_with_all = ["http1_1", "http2_prior_knowledge"])]
    http2: bool,
    /// HTTP/2 without negotiating: the connection starts with HTTP/2's preface, also on
    /// cleartext.
    #[arg(long = "http2-prior-knowledge", overrides_with_all = ["http1_1", "http2"])]
    http2_prior_knowledge: bool,
    /// The most transfers at once.
    #[arg(long, value_name = "N", default_value_t = 50)]
    parallel_max: usize,
    /// Write the next URL's body to FILE (`-` standard output, `/dev/null` discards).
    #[arg(short = 'o', long = "output", value_name = "FILE")]
    outputs: Vec<String>,
    /// Write each body to a file named after the URL's last path segment.
    #[arg(short = 'O', long = "remote-name", visible_alias = "remote-name-all")]
    remote_name: bool,
    /// The directory -O files go to.
    #[arg(long, value_name = "DIR")]
    output_dir: Option<PathBuf>,
    /// Follow redirects.
    #[arg(short = 'L', long = "location")]
    follow: bool,
    /// The most redirects followed.
    #[arg(long, value_name = "NUM", default_value_t = 50)]
    max_redirs: u32,
    /// The most time one transfer may take, in seconds.
    #[arg(short = 'm', long, value_name = "SECONDS", value_parser = secs)]
    max_time: Option<Duration>,
    /// The most time connecting may take, in seconds.
    #[arg(long, value_name = "SECONDS", value_parser = secs, default_value = "300")]
    connect_timeout: Duration,
    /// Abort a transfer slower than this many bytes per second for --speed-time.
    #[arg(short = 'Y', long, value_name = "BYTES")]
    speed_limit: Option<u64>,
    /// How long a transfer may stay below --speed-limit, in seconds.
    #[arg(short = 'y', long, value_name = "SECONDS", value_parser = secs, default_value = "30")]
    speed_time: Duration,
    /// An extra request header, `Name: value` (repeatable).
    #[arg(short = 'H', long = "header", value_name = "HEADER", value_parser = header)]
    headers: Vec<(String, String)>,
    /// Send DATA in a POST body.
    #[arg(short = 'd', long = "data", visible_alias = "data-binary", value_name = "DATA")]
    data: Option<String>,
    /// The request method.
    #[arg(short = 'X', long = "request", value_name = "METHOD")]
    method: Option<String>,
    /// Send HEAD requests.
    #[arg(short = 'I', long)]
    head: bool,
    /// No progress bar, summary line or error messages.
    #[arg(short = 's', long)]
    silent: bool,
    /// Do not verify the server's certificate (HTTPS).
    #[arg(short = 'k', long)]
    insecure: bool,
    /// Verify servers with the CA certificates in FILE (HTTPS).
    #[arg(long, value_name = "FILE")]
    cacert: Option<PathBuf>,
    /// More detail on standard error: -v for debug, -vv for trace (RUST_LOG overrides).
    #[arg(short = 'v', long, action = ArgAction::Count)]
    verbose: u8,
}

#[derive(Debug)]
pub(crate) struct Opts {
    pub(crate) jobs: Vec<Job>,
    pub(crate) parallel_max: usize,
    pub(crate) follow: bool,
    pub(crate) max_redirs: u32,
    pub(crate) max_time: Option<Duration>,
    pub(crate) connect_timeout: Option<Duration>,
    pub(crate) speed_limit: Option<(u64, Duration)>,
    pub(crate) headers: Vec<(String, String)>,
    pub(crate) data: Option<String>,
    pub(crate) method: Option<String>,
    pub(crate) head: bool,
    pub(crate) silent: bool,
    pub(crate) insecure: bool,
    pub(crate) cacert: Option<PathBuf>,
    pub(crate) verbose: u8,
    pub(crate) version: HttpVersion,
    /// Wait for a connection that may multiplex (`CURLOPT_PIPEWAIT`), unless
    /// `--parallel-immediate`.
    pub(crate) pipewait: bool,
}

fn secs(v: &str) -> Result<Duration, String> {
    v.parse::<f64>()
        .ok()
        .filter(|s| *s >= 0.0 && s.is_finite())
        .and_then(|s| Duration::try_from_secs_f64(s).ok())
        .ok_or_else(|| format!("not a number of seconds: {v:?}"))
}

fn header(h: &str) -> Result<(String, String), String> {
    let (n, v) = h.split_once(':').ok_or_else(|| format!("not `Name: value`: {h:?}"))?;
    Ok((n.trim().to_string(), v.trim().to_string()))
}

fn output_of(path: &str) -> Output {
    if path == "/dev/null" {
        Output::Discard
    } else if path == "-" {
        Output::Stdout
    } else {
        Output::File(path.into())
    }
}

/// Reads curl-style config lines: `url = "X"`, `output = "Y"`, `url X`, or a bare URL.
fn config(path: &str, urls: &mut Vec<String>, outputs: &mut Vec<Output>) -> Result<(), String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{path}: {e}"))?;
    for line in text.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#')) {
        if line.contains("://") && !line.trim_start_matches('-').starts_with("url") {
            urls.push(line.trim_matches('"').to_string());
            continue;
        }
        let (key, value) =
            match line.split_once(|c: char| c == '=' || c == ':' || c.is_whitespace()) {
                Some((k, v)) => (k.trim(), v.trim().trim_start_matches(['=', ':']).trim()),
                None => ("url", line),
            };
        let value = value.trim_matches('"').to_string();
        match key.trim_start_matches('-') {
            "url" => urls.push(value),
            "output" | "o" => outputs.push(output_of(&value)),
            other => return Err(format!("{path}: unsupported config key {other:?}")),
        }
    }
    Ok(())
}

/// What came at which place on the command line, for curl's pairing of URLs and outputs.
enum Given {
    Url(String),
    Output(Output),
    Config(String),
}

/// Parses the command line; `--help`, `--version` and usage errors end the process here
/// (exit 0, or 2 naming the bad flag or value).
pub(crate) fn parse(args: impl Iterator<Item = String>) -> Result<Opts, String> {
    let matches =
        Args::command().get_matches_from(std::iter::once("mxfer".to_string()).chain(args));
    let a = Args::from_arg_matches(&matches).map_err(|e| e.to_string())?;
    let at = |id: &str| matches.indices_of(id).map(Iterator::collect::<Vec<_>>).unwrap_or_default();
    let mut given: Vec<(usize, Given)> = Vec::new();
    given.extend(at("urls").into_iter().zip(a.urls).map(|(i, u)| (i, Given::Url(u))));
    given.extend(at("url_flags").into_iter().zip(a.url_flags).map(|(i, u)| (i, Given::Url(u))));
    given.extend(at("configs").into_iter().zip(a.configs).map(|(i, c)| (i, Given::Config(c))));
    given.extend(
        at("outputs").into_iter().zip(a.outputs).map(|(i, o)| (i, Given::Output(output_of(&o)))),
    );
    given.sort_by_key(|(i, _)| *i);
    let (mut urls, mut outputs) = (Vec::new(), Vec::new());
    for (_, g) in given {
        match g {
            Given::Url(u) => urls.push(u),
            Given::Output(o) => outputs.push(o),
            Given::Config(path) => config(&path, &mut urls, &mut outputs)?,
        }
    }
    if urls.is_empty() {
        return Err("no URL given (see --help)".into());
    }
    let mut jobs = Vec::new();
    for (i, pattern) in urls.iter().enumerate() {
        let explicit = outputs.get(i).cloned();
        for url in multixfer::glob::expand(pattern)? {
            let output = match (&explicit, &a.output_dir) {
                (Some(o), _) => o.clone(),
                (None, Some(dir)) => Output::File(crate::remote_name(dir, &url)),
                (None, None) if a.remote_name => {
                    Output::File(crate::remote_name(".".as_ref(), &url))
                }
                _ => Output::Stdout,
            };
            jobs.push(Job { url, output });
        }
    }
    Ok(Opts {
        jobs,
        parallel_max: a.parallel_max.clamp(1, 100_000),
        follow: a.follow,
        max_redirs: a.max_redirs,
        max_time: a.max_time,
        connect_timeout: Some(a.connect_timeout),
        speed_limit: a.speed_limit.map(|l| (l, a.speed_time)),
        headers: a.headers,
        data: a.data,
        method: a.method,
        head: a.head,
        silent: a.silent,
        insecure: a.insecure,
        cacert: a.cacert,
        verbose: a.verbose,
        // The flags override one another, so at most one is set; `--http2` is the default.
        version: match (a.http1_1, a.http2_prior_knowledge, a.http2) {
            (true, _, _) => HttpVersion::Http11,
            (_, true, _) => HttpVersion::Http2PriorKnowledge,
            _ => HttpVersion::Http2Tls,
        },
        pipewait: !a.parallel_immediate,
    })
}
