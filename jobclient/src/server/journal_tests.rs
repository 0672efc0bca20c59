//! The journal's format: replay, torn tails at every cut, damage at every byte.

use super::*;

fn job(h: &str, data: &str) -> Saved {
    Saved {
        handle: Bytes::copy_from_slice(h.as_bytes()),
        function: Bytes::from_static(b"f"),
        unique: Bytes::new(),
        data: Bytes::copy_from_slice(data.as_bytes()),
        priority: 1,
        epoch: 0,
        reducer: Bytes::new(),
    }
}

fn log(records: impl FnOnce(&mut BytesMut)) -> BytesMut {
    let mut b = BytesMut::from(&MAGIC[..]);
    records(&mut b);
    b
}

#[test]
fn replay_keeps_what_is_not_done_in_order() {
    let l = log(|l| {
        add(l, &job("H:1", "a"));
        add(l, &job("H:2", "b"));
        add(l, &job("H:3", "c"));
        done(l, b"H:2");
    });
    assert_eq!(replay(&l), (vec![job("H:1", "a"), job("H:3", "c")], vec![]));
}

#[test]
fn a_torn_tail_is_dropped_and_reported_at_every_cut() {
    let l = log(|l| add(l, &job("H:1", "a")));
    let whole = l.len();
    let l = log(|l| {
        add(l, &job("H:1", "a"));
        add(l, &job("H:2", "bbbb"));
    });
    for cut in whole..l.len() {
        let (live, problems) = replay(&l[..cut]);
        assert_eq!(live, [job("H:1", "a")], "cut at {cut}");
        let expect = if cut > whole {
            vec![Problem::TornTail { offset: whole, bytes: cut - whole }]
        } else {
            vec![]
        };
        assert_eq!(problems, expect, "cut at {cut}");
    }
}

/// A record damaged in the middle (a disk error, a torn write followed by more appends) used
/// to end the replay silently, and the next compaction deleted every later record.
#[test]
fn damage_in_the_middle_costs_only_the_damaged_record() {
    let first = log(|l| add(l, &job("H:1", "a")));
    let l = log(|l| {
        add(l, &job("H:1", "a"));
        add(l, &job("H:2", "b"));
        add(l, &job("H:3", "c"));
        done(l, b"H:1");
    });
    let second_end = log(|l| {
        add(l, &job("H:1", "a"));
        add(l, &job("H:2", "b"));
    })
    .len();
    for at in first.len()..second_end {
        for flip in [0x01u8, 0x80, 0xff] {
            let mut bad = l.clone();
            bad[at] ^= flip;
            let (live, problems) = replay(&bad);
            assert_eq!(live, [job("H:3", "c")], "byte {at} ^ {flip:#x}");
            assert!(
                matches!(problems[..], [Problem::Corrupt { offset, .. }] if offset == first.len()),
                "byte {at} ^ {flip:#x}: {problems:?}"
            );
        }
    }
}

#[test]
fn a_file_of_the_first_format_still_replays() {
    // The first format: the same payloads back to back, no magic, no frames.
    let mut v1 = BytesMut::new();
    for (kind, h, data) in [(b'A', "H:1", "a"), (b'A', "H:2", "b"), (b'D', "H:1", "")] {
        v1.put_u8(kind);
        if kind == b'A' {
            v1.put_u8(1);
            v1.put_u64(0);
        }
        v1.put_u32(h.len() as u32);
        v1.put_slice(h.as_bytes());
        if kind == b'A' {
            for field in ["f", "", data] {
                v1.put_u32(field.len() as u32);
                v1.put_slice(field.as_bytes());
            }
        }
    }
    assert_eq!(replay(&v1), (vec![job("H:2", "b")], vec![]));
    let (live, problems) = replay(&v1[..v1.len() - 2]);
    assert_eq!(live, [job("H:1", "a"), job("H:2", "b")]);
    assert_eq!(problems.len(), 1);
}

#[test]
fn garbage_never_panics_or_over_allocates() {
    for bytes in [
        &[b'A', 1, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff][..],
        b"Zgarbage",
        &[&MAGIC[..], &[0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0]].concat(),
        &MAGIC[..7],
    ] {
        fuzz_replay(bytes);
    }
}

#[test]
fn many_done_records_replay_in_linear_time() {
    let l = log(|l| {
        for i in 0..50_000 {
            add(l, &job(&format!("H:{i}"), "x"));
        }
        for i in 0..50_000 {
            done(l, format!("H:{i}").as_bytes());
        }
    });
    let (live, problems) = replay(&l);
    assert!(live.is_empty() && problems.is_empty());
}

/// The search for the next good record once checksummed at every offset whatever length the
/// bytes there claimed: with data whose bytes read as plausible lengths everywhere, a torn
/// record of a few MiB cost a checksum of 64 KiB at every other byte, minutes of work (hours
/// at 64 MiB). The shape checks now reject those offsets before any checksum.
#[test]
fn a_large_torn_record_full_of_plausible_lengths_replays() {
    let mut l = log(|l| add(l, &job("H:1", "a")));
    let whole = l.len();
    let mut big = BytesMut::new();
    add(&mut big, &job("H:2", &"\u{0}\u{1}\u{0}\u{0}".repeat(1 << 20)));
    l.extend_from_slice(&big[..big.len() - 10]);
    let (live, problems) = replay(&l);
    assert_eq!(live, [job("H:1", "a")]);
    assert_eq!(problems, [Problem::TornTail { offset: whole, bytes: l.len() - whole }]);
}

#[test]
fn a_reduce_job_keeps_its_reducer() {
    let mut reduce = job("H:9", "r");
    reduce.reducer = Bytes::from_static(b"sum");
    let l = log(|l| {
        add(l, &job("H:1", "a"));
        add(l, &reduce);
    });
    assert_eq!(add_len(&reduce), l.len() - MAGIC.len() - add_len(&job("H:1", "a")));
    assert_eq!(replay(&l), (vec![job("H:1", "a"), reduce], vec![]));
}
