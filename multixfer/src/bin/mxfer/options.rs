//! Command-line and `-K` config parsing, with curl's names.

use std::path::PathBuf;
use std::time::Duration;

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
}

fn secs(v: &str) -> Result<Duration, String> {
    v.parse::<f64>()
        .ok()
        .filter(|s| *s >= 0.0 && s.is_finite())
        .map(Duration::from_secs_f64)
        .ok_or_else(|| format!("not a number of seconds: {v:?}"))
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

pub(crate) fn parse(args: impl Iterator<Item = String>) -> Result<Opts, String> {
    let mut opts = Opts {
        jobs: Vec::new(),
        parallel_max: 50,
        follow: false,
        max_redirs: 50,
        max_time: None,
        connect_timeout: Some(Duration::from_secs(300)),
        speed_limit: None,
        headers: Vec::new(),
        data: None,
        method: None,
        head: false,
        silent: false,
        insecure: false,
        cacert: None,
    };
    let mut urls = Vec::new();
    // As in curl, the n-th output (from -o or a config file) goes with the n-th URL.
    let mut outputs: Vec<Output> = Vec::new();
    let mut output_dir: Option<PathBuf> = None;
    let mut remote_name = false;
    let (mut speed_limit, mut speed_time) = (None, Duration::from_secs(30));
    let mut args = args.peekable();
    while let Some(arg) = args.next() {
        let mut value = |name: &str| args.next().ok_or_else(|| format!("{name} needs a value"));
        match arg.as_str() {
            "-Z" | "--parallel" | "--parallel-immediate" => {}
            "--parallel-max" => {
                opts.parallel_max = value(&arg)?.parse().map_err(|_| "bad --parallel-max")?;
                opts.parallel_max = opts.parallel_max.clamp(1, 100_000);
            }
            "-K" | "--config" => config(&value(&arg)?, &mut urls, &mut outputs)?,
            "-o" | "--output" => outputs.push(output_of(&value(&arg)?)),
            "-O" | "--remote-name" | "--remote-name-all" => remote_name = true,
            "--output-dir" => output_dir = Some(value(&arg)?.into()),
            "-L" | "--location" => opts.follow = true,
            "--max-redirs" => {
                opts.max_redirs = value(&arg)?.parse().map_err(|_| "bad --max-redirs")?
            }
            "-m" | "--max-time" => opts.max_time = Some(secs(&value(&arg)?)?),
            "--connect-timeout" => opts.connect_timeout = Some(secs(&value(&arg)?)?),
            "-Y" | "--speed-limit" => {
                speed_limit = Some(value(&arg)?.parse::<u64>().map_err(|_| "bad --speed-limit")?)
            }
            "-y" | "--speed-time" => speed_time = secs(&value(&arg)?)?,
            "-H" | "--header" => {
                let h = value(&arg)?;
                let (n, v) = h.split_once(':').ok_or_else(|| format!("bad header {h:?}"))?;
                opts.headers.push((n.trim().to_string(), v.trim().to_string()));
            }
            "-d" | "--data" | "--data-binary" => opts.data = Some(value(&arg)?),
            "-X" | "--request" => opts.method = Some(value(&arg)?),
            "-I" | "--head" => opts.head = true,
            "-s" | "--silent" => opts.silent = true,
            "-k" | "--insecure" => opts.insecure = true,
            "--cacert" => opts.cacert = Some(value(&arg)?.into()),
            "--url" => urls.push(value(&arg)?),
            a if a.starts_with('-') && a.len() > 1 => return Err(format!("unknown option {a}")),
            _ => urls.push(arg),
        }
    }
    if let Some(limit) = speed_limit {
        opts.speed_limit = Some((limit, speed_time));
    }
    if urls.is_empty() {
        return Err("no URL given".into());
    }
    for (i, pattern) in urls.iter().enumerate() {
        let explicit = outputs.get(i).cloned();
        for url in multixfer::glob::expand(pattern)? {
            let output = match (&explicit, &output_dir) {
                (Some(o), _) => o.clone(),
                (None, Some(dir)) => Output::File(crate::remote_name(dir, &url)),
                (None, None) if remote_name => Output::File(crate::remote_name(".".as_ref(), &url)),
                _ => Output::Stdout,
            };
            opts.jobs.push(Job { url, output });
        }
    }
    Ok(opts)
}
