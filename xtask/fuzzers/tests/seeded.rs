//! Each fuzz target on every saved regression input, then on seeded random inputs and on
//! mutations of valid seeds, in plain `cargo test`: the short, always-on counterpart of
//! `cargo xtask fuzz`. A failure names the target and the seed, or the file.

use std::path::Path;

/// Seeds per target in `cargo test`; `FUZZ_SEEDS=N` runs more.
fn seeds() -> u64 {
    std::env::var("FUZZ_SEEDS").ok().and_then(|s| s.parse().ok()).unwrap_or(3_000)
}

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

/// Valid inputs per target, mutated below: most bugs hide just past the well-formed.
fn valid(target: &str) -> Vec<Vec<u8>> {
    use bytes::BytesMut;
    use jobclient::proto::{encode, Magic, PacketType as T};
    let packet = |kind, args: &[&[u8]]| {
        let mut b = BytesMut::new();
        encode(&mut b, Magic::Req, kind, args).unwrap();
        b.to_vec()
    };
    let seg = |conn: u8, bytes: Vec<u8>| {
        let mut out = Vec::new();
        for c in bytes.chunks(255) {
            out.push(conn);
            out.push(c.len() as u8);
            out.extend_from_slice(c);
        }
        out
    };
    match target {
        "gearman_packets" => vec![
            packet(T::SubmitJob, &[b"f", b"u", b"data"]),
            packet(T::WorkFail, &[b"H:x:1"]),
            [packet(T::CanDo, &[b"f"]), packet(T::GrabJobAll, &[])].concat(),
        ],
        "gearman_server" => vec![[
            seg(1, packet(T::CanDoTimeout, &[b"f", b"10"])),
            seg(0, packet(T::SubmitJob, &[b"f", b"u", b"x"])),
            seg(8, packet(T::SubmitJobBg, &[b"f", b"", b"x"])),
            seg(0, packet(T::SubmitJobEpoch, &[b"f", b"", b"1700000005", b"x"])),
            seg(1, packet(T::GrabJob, &[])),
            seg(5, packet(T::WorkComplete, &[b"H:fuzz:1", b"r"])),
            seg(2, b"workers\nstatus\nshow jobs\ncancel job H:fuzz:2\n".to_vec()),
            seg(17, packet(T::PreSleep, &[])),
        ]
        .concat()],
        "groupd_frames" => vec![vec![0, 0, 0, 5, 1, b'g', b'r', b'o', b'u'], vec![0; 16]],
        "http_response" => vec![
            b"\x03HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello".to_vec(),
            b"\x05HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5;x=y\r\nhello\r\n0\r\nT: v\r\n\r\n".to_vec(),
            b"\x81HTTP/1.0 100 Continue\r\n\r\nHTTP/1.0 200 OK\r\n\r\nbody".to_vec(),
        ],
        "url_glob" => vec![
            b"http://h/f[1-10:3]{a,b}".to_vec(),
            b"http://[::1]:8/[a-c]".to_vec(),
            b"f[001-100]\\[x".to_vec(),
        ],
        _ => vec![Vec::new()],
    }
}

fn regressions(target: &str) -> Vec<(String, Vec<u8>)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("regressions").join(target);
    let Ok(entries) = std::fs::read_dir(&dir) else { return Vec::new() };
    let mut files: Vec<_> = entries.map(|e| e.unwrap().path()).collect();
    files.sort();
    files.into_iter().map(|p| (p.display().to_string(), std::fs::read(&p).unwrap())).collect()
}

fn run(name: &str, f: fn(&[u8]), input: &[u8], what: &str) {
    let r = std::panic::catch_unwind(|| f(input));
    assert!(r.is_ok(), "fuzz target {name} failed on {what}: input {input:?}");
}

#[test]
fn every_target_on_its_regressions_and_seeded_inputs() {
    for &(name, f) in fuzzers::TARGETS {
        for (file, input) in regressions(name) {
            run(name, f, &input, &file);
        }
        let valid = valid(name);
        for seed in 0..seeds() {
            let mut rng = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
            let mut input = if seed % 2 == 0 {
                valid[(rng.next() % valid.len() as u64) as usize].clone()
            } else {
                (0..rng.next() % 256).map(|_| rng.next() as u8).collect()
            };
            // Mutations: flip, insert, delete, duplicate a stretch, set boundary values.
            for _ in 0..rng.next() % 8 {
                let len = input.len().max(1);
                let at = (rng.next() as usize) % len;
                match rng.next() % 5 {
                    0 if !input.is_empty() => input[at] ^= 1 << (rng.next() % 8),
                    1 => input.insert(at.min(input.len()), rng.next() as u8),
                    2 if !input.is_empty() => {
                        input.remove(at);
                    }
                    3 if !input.is_empty() => {
                        let end = (at + 1 + (rng.next() as usize) % 16).min(input.len());
                        let stretch = input[at..end].to_vec();
                        input.splice(at..at, stretch);
                    }
                    _ if !input.is_empty() => input[at] = [0, 0xff, 0x7f, 0x80][at % 4],
                    _ => {}
                }
            }
            run(name, f, &input, &format!("seed {seed}"));
        }
    }
}
