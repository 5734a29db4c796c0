use super::*;

const T: Duration = Duration::from_millis(10);

fn opts(dir: &Path) -> Options {
    Options {
        dir: dir.to_path_buf(),
        max_bytes: 1 << 20,
        segment_bytes: 1024,
        sync_watermark: false,
    }
}

fn segment_files(dir: &Path) -> Vec<u64> {
    let mut v: Vec<u64> = fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| segment::parse_file_name(e.unwrap().file_name().to_str().unwrap()))
        .collect();
    v.sort_unstable();
    v
}

fn read_all(reader: &mut Reader) -> Vec<Entry> {
    let mut out = Vec::new();
    while let Some(e) = reader.next(T).unwrap() {
        out.push(e);
    }
    out
}

#[test]
fn appends_are_read_in_order_and_acked() {
    let dir = tempfile::tempdir().unwrap();
    let (wal, report) = Wal::open(opts(dir.path())).unwrap();
    assert_eq!(report.replay_entries, 0);
    let mut reader = wal.reader();
    for i in 0..5u8 {
        assert_eq!(wal.append(i % 3, &[i; 10]).unwrap(), i as u64 + 1);
    }
    wal.sync().unwrap();
    let entries = read_all(&mut reader);
    assert_eq!(entries.len(), 5);
    assert_eq!(entries[3].seq, 4);
    assert_eq!(entries[3].tag, 0);
    assert_eq!(entries[3].data, vec![3; 10]);
    assert_eq!(wal.stats().entries, 5);
    for e in &entries {
        wal.ack(e.seq);
    }
    assert_eq!(wal.stats().entries, 0);
    assert_eq!(wal.watermark(), 5);
}

#[test]
fn restart_replays_only_what_was_not_acked() {
    let dir = tempfile::tempdir().unwrap();
    {
        let (wal, _) = Wal::open(opts(dir.path())).unwrap();
        let mut reader = wal.reader();
        for i in 0..6u8 {
            wal.append(0, &[i]).unwrap();
        }
        let entries = read_all(&mut reader);
        wal.ack(entries[0].seq);
        wal.ack(entries[1].seq);
        wal.ack(entries[3].seq); // out of order: 3 is still in flight
        assert_eq!(wal.watermark(), 2);
        wal.close().unwrap();
    }
    let (wal, report) = Wal::open(opts(dir.path())).unwrap();
    assert_eq!(report.replay_entries, 4);
    assert_eq!(report.replay_until, 6);
    let seqs: Vec<u64> = read_all(&mut wal.reader()).iter().map(|e| e.seq).collect();
    assert_eq!(seqs, vec![3, 4, 5, 6], "at least once: 4 is replayed too");
    assert_eq!(wal.append(0, b"new").unwrap(), 7);
}

#[test]
fn watermark_advances_over_out_of_order_acks() {
    let dir = tempfile::tempdir().unwrap();
    let (wal, _) = Wal::open(opts(dir.path())).unwrap();
    let mut reader = wal.reader();
    for _ in 0..4 {
        wal.append(0, b"x").unwrap();
    }
    read_all(&mut reader);
    wal.ack(4);
    wal.ack(2);
    assert_eq!(wal.watermark(), 0);
    wal.ack(1);
    assert_eq!(wal.watermark(), 2);
    wal.ack(3);
    assert_eq!(wal.watermark(), 4);
    wal.ack(3); // twice is harmless
    assert_eq!(wal.stats().entries, 0);
}

#[test]
fn killed_without_close_replays_everything_not_collected() {
    let dir = tempfile::tempdir().unwrap();
    {
        let (wal, _) = Wal::open(opts(dir.path())).unwrap();
        let mut reader = wal.reader();
        for i in 0..3u8 {
            wal.append(1, &[i]).unwrap();
        }
        let entries = read_all(&mut reader);
        wal.ack(entries[0].seq);
        // No close, no collect: as after kill -9 (dropping releases the lock
        // as the kernel does for a dead process, and writes nothing).
        drop(wal);
    }
    let (wal, report) = Wal::open(opts(dir.path())).unwrap();
    assert_eq!(report.replay_entries, 3);
    assert_eq!(read_all(&mut wal.reader()).len(), 3);
}

#[test]
fn segments_roll_over_and_are_deleted_once_acked() {
    let dir = tempfile::tempdir().unwrap();
    let (wal, _) = Wal::open(opts(dir.path())).unwrap();
    let mut reader = wal.reader();
    // 100-byte entries in 1 KiB segments: 8 or 9 per segment.
    for _ in 0..40 {
        wal.append(0, &[7; 100]).unwrap();
    }
    let files = segment_files(dir.path());
    assert!(files.len() >= 4, "{files:?}");
    let entries = read_all(&mut reader);
    assert_eq!(entries.len(), 40);
    let bytes_before = wal.stats().bytes;
    for e in &entries[..20] {
        wal.ack(e.seq);
    }
    wal.collect().unwrap();
    let after = segment_files(dir.path());
    assert!(after.len() < files.len(), "{after:?}");
    assert!(
        after[0] <= 21,
        "the segment holding entry 21 stays: {after:?}"
    );
    assert!(wal.stats().bytes < bytes_before);
    for e in &entries[20..] {
        wal.ack(e.seq);
    }
    wal.collect().unwrap();
    assert_eq!(
        segment_files(dir.path()).len(),
        1,
        "only the active segment stays"
    );
    drop(reader);
    drop(wal);
    let (_, report) = Wal::open(opts(dir.path())).unwrap();
    assert_eq!(report.replay_entries, 0);
}

#[test]
fn size_cap_refuses_until_acks_free_room() {
    let dir = tempfile::tempdir().unwrap();
    let mut o = opts(dir.path());
    o.max_bytes = 2048;
    o.segment_bytes = 512;
    let (wal, _) = Wal::open(o).unwrap();
    let mut reader = wal.reader();
    let mut accepted = 0;
    loop {
        match wal.append(0, &[1; 100]) {
            Ok(_) => accepted += 1,
            Err(AppendError::Full) => break,
            Err(e) => panic!("{e}"),
        }
        assert!(accepted < 100);
    }
    assert!(wal.stats().bytes <= 2048);
    assert!(accepted >= 10, "{accepted}");
    let entries = read_all(&mut reader);
    assert!(matches!(wal.append(0, &[1; 100]), Err(AppendError::Full)));
    for e in &entries {
        wal.ack(e.seq);
    }
    // The append itself collects the acknowledged segments.
    wal.append(0, &[1; 100]).unwrap();
    assert!(wal.stats().bytes <= 2048);
}

#[test]
fn an_oversized_entry_is_admitted_into_an_empty_queue() {
    let dir = tempfile::tempdir().unwrap();
    let mut o = opts(dir.path());
    o.max_bytes = 100;
    let (wal, _) = Wal::open(o).unwrap();
    wal.append(0, &[0; 500]).unwrap();
    assert!(matches!(wal.append(0, b"x"), Err(AppendError::Full)));
}

#[test]
fn a_torn_tail_is_truncated_and_reported() {
    let dir = tempfile::tempdir().unwrap();
    {
        let (wal, _) = Wal::open(opts(dir.path())).unwrap();
        wal.append(0, b"one").unwrap();
        wal.append(0, b"two").unwrap();
    }
    let path = dir.path().join(segment::file_name(1));
    let len = fs::metadata(&path).unwrap().len();
    // Half a frame, as a crash in the middle of a write leaves it.
    OpenOptions::new()
        .write(true)
        .open(&path)
        .unwrap()
        .set_len(len - 2)
        .unwrap();
    let (wal, report) = Wal::open(opts(dir.path())).unwrap();
    assert_eq!(report.corrupt, 1);
    assert_eq!(report.replay_entries, 1);
    assert!(report.truncated_bytes > 0);
    // Appends continue after the valid part, and everything reads back.
    assert_eq!(wal.append(0, b"three").unwrap(), 2);
    let data: Vec<Vec<u8>> = read_all(&mut wal.reader())
        .into_iter()
        .map(|e| e.data)
        .collect();
    assert_eq!(data, vec![b"one".to_vec(), b"three".to_vec()]);
}

#[test]
fn a_corrupt_entry_cuts_its_segment_but_later_segments_survive() {
    let dir = tempfile::tempdir().unwrap();
    {
        let (wal, _) = Wal::open(opts(dir.path())).unwrap();
        for _ in 0..20 {
            wal.append(0, &[5; 100]).unwrap();
        }
    }
    let files = segment_files(dir.path());
    assert!(files.len() >= 2);
    let first = dir.path().join(segment::file_name(files[0]));
    let mut bytes = fs::read(&first).unwrap();
    // Flip a data byte of the second entry.
    let at = MAGIC.len() + segment::frame_len(100) as usize + segment::HEADER + 5;
    bytes[at] ^= 0xff;
    fs::write(&first, &bytes).unwrap();
    let (wal, report) = Wal::open(opts(dir.path())).unwrap();
    assert_eq!(report.corrupt, 1);
    let seqs: Vec<u64> = read_all(&mut wal.reader()).iter().map(|e| e.seq).collect();
    assert_eq!(seqs[0], 1);
    assert_eq!(
        seqs[1], files[1],
        "entries 2.. of the first segment are lost"
    );
    assert_eq!(*seqs.last().unwrap(), 20);
    assert_eq!(wal.append(0, b"x").unwrap(), 21);
}

#[test]
fn a_garbage_segment_and_watermark_never_panic() {
    let dir = tempfile::tempdir().unwrap();
    fs::write(dir.path().join(segment::file_name(5)), b"not a segment").unwrap();
    fs::write(dir.path().join(watermark::FILE), b"???").unwrap();
    let (wal, report) = Wal::open(opts(dir.path())).unwrap();
    assert!(report.watermark_unreadable);
    assert_eq!(report.corrupt, 1);
    assert!(
        wal.append(0, b"x").unwrap() >= 5,
        "sequence numbers never go back"
    );
}

#[test]
fn reader_waits_for_appends_and_ends_on_close() {
    let dir = tempfile::tempdir().unwrap();
    let (wal, _) = Wal::open(opts(dir.path())).unwrap();
    let mut reader = wal.reader();
    let handle = std::thread::spawn(move || {
        let first = reader.next(Duration::from_secs(10)).unwrap();
        let after_close = reader.next(Duration::from_secs(10)).unwrap();
        (first, after_close)
    });
    std::thread::sleep(Duration::from_millis(50));
    wal.append(3, b"late").unwrap();
    std::thread::sleep(Duration::from_millis(50));
    wal.close().unwrap();
    let (first, after_close) = handle.join().unwrap();
    assert_eq!(first.unwrap().data, b"late");
    assert_eq!(after_close, None);
    assert!(matches!(wal.append(0, b"x"), Err(AppendError::Closed)));
}

#[test]
fn a_second_open_of_the_same_directory_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (wal, _) = Wal::open(opts(dir.path())).unwrap();
    let err = Wal::open(opts(dir.path())).err().unwrap();
    assert_eq!(err.kind(), io::ErrorKind::WouldBlock);
    drop(wal);
    Wal::open(opts(dir.path())).unwrap();
}

#[test]
fn sync_after_roll_over_is_harmless() {
    let dir = tempfile::tempdir().unwrap();
    let (wal, _) = Wal::open(opts(dir.path())).unwrap();
    for _ in 0..30 {
        wal.append(0, &[1; 100]).unwrap();
        wal.sync().unwrap();
    }
    wal.sync().unwrap();
}
