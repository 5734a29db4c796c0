//! The replay parser (`replay::read_batches_from`): Cloud Logging JSON
//! exports (an array of LogEntry objects), JSON lines of LogEntries and
//! OTLP/JSON lines, mapped to OTLP log batches.

#![no_main]

use libfuzzer_sys::fuzz_target;
use log_gardener::replay::{self, MapOptions};

fuzz_target!(|data: &[u8]| {
    let options = MapOptions::default();
    let mut records = 0usize;
    let result = replay::read_batches_from(data, "fuzz input", &options, |request| {
        let n = gardener_exporter::batch::log_records(&request);
        records += n;
        Ok(())
    });
    if let Ok(read) = result {
        assert_eq!(read.records as usize, records);
    }
});
