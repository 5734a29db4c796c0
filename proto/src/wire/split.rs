//! Splitting an encoded logs or trace request into smaller requests, without
//! decoding it.
//!
//! Why: an exporter must split a request over its batch bounds (the next
//! hop refuses messages over 4 MiB), and splitting decoded requests costs
//! a prost struct per record and per attribute: a 21 MB request of ten
//! million empty log records took a forwarding collector to 11 GiB. Here
//! each part is written once from slices of the request: resources and
//! scopes keep their own fields (copied into every part they appear in),
//! records are copied as they are, in order. Memory is the request's size
//! again, plus a few words per record.
//!
//! The parts follow the rules of the decoded splitter in the exporter
//! (`gardener_exporter::split`): a record that would take a part over
//! `max_records` records or `max_bytes` bytes starts the next part (a
//! record larger than `max_bytes` goes out alone); resources and scopes
//! without records are left out; an empty request gives one empty part.

use super::reader::{fields, varint_len, Fields, WireValue};

/// One request of a split: its encoding and its number of records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SplitPart {
    pub bytes: Vec<u8>,
    pub records: usize,
}

/// Splits the request whose encoding is the concatenation of `buffers`
/// (the parts of a joined request, each a whole encoded request) into
/// requests of at most `max_records` records and about `max_bytes` bytes.
/// Logs and trace requests are framed alike (field 1 resources, field 2
/// scopes, field 2 records or spans), so this serves both.
///
/// `None` when the bytes are not well framed (they passed the receiver's
/// validation, so this is not expected; the caller can fall back to
/// decoding). Fields of the request itself other than its resources are
/// dropped, as prost drops unknown fields.
pub fn split_request<'a>(
    buffers: impl IntoIterator<Item = &'a [u8]>,
    max_records: usize,
    max_bytes: usize,
) -> Option<Vec<SplitPart>> {
    let mut split = Splitter {
        max_records: max_records.max(1),
        max_bytes: max_bytes.max(1),
        parts: Vec::new(),
        part: Vec::new(),
        records: 0,
        bytes: 0,
        at: None,
    };
    let mut resource_index = 0;
    for buffer in buffers {
        let mut request = Framed::new(buffer);
        for (tag, _, payload) in request.by_ref() {
            if let (1, Some(resource)) = (tag, payload) {
                split.resource(resource, resource_index)?;
                resource_index += 1;
            }
        }
        if request.malformed() {
            return None;
        }
    }
    if split.records > 0 || split.parts.is_empty() {
        split.flush();
    }
    Some(split.parts)
}

/// A resource or a scope of the part being built: its own fields, and its
/// children (scopes of a resource; for a scope, no children but records).
struct Level<'a> {
    own: Vec<&'a [u8]>,
    scopes: Vec<Level<'a>>,
    records: Vec<&'a [u8]>,
}

impl<'a> Level<'a> {
    fn new(own: Vec<&'a [u8]>) -> Self {
        Level {
            own,
            scopes: Vec::new(),
            records: Vec::new(),
        }
    }

    /// Encoded size of the message's body (without its key and length).
    fn body_len(&self) -> usize {
        let own: usize = self.own.iter().map(|f| f.len()).sum();
        let scopes: usize = self.scopes.iter().map(|s| framed(s.body_len())).sum();
        let records: usize = self.records.iter().map(|r| r.len()).sum();
        own + scopes + records
    }

    fn write(&self, tag_byte: u8, out: &mut Vec<u8>) {
        out.push(tag_byte);
        super::put_varint(out, self.body_len() as u64);
        for field in &self.own {
            out.extend_from_slice(field);
        }
        for scope in &self.scopes {
            scope.write(SCOPE_KEY, out);
        }
        for record in &self.records {
            out.extend_from_slice(record);
        }
    }
}

/// Field 1, length-delimited: a request's resource.
const RESOURCE_KEY: u8 = 0x0a;
/// Field 2, length-delimited: a resource's scope.
const SCOPE_KEY: u8 = 0x12;

/// Bytes of a length-delimited field with a one-byte key and a body of `len`.
fn framed(len: usize) -> usize {
    1 + varint_len(len as u64) + len
}

/// A resource's scopes or a scope's records (field 2, as `(payload, whole
/// field)`), and the message's other fields (whole); `None` if malformed.
#[allow(clippy::type_complexity)]
fn children_and_own(msg: &[u8]) -> Option<(Vec<(&[u8], &[u8])>, Vec<&[u8]>)> {
    let (mut children, mut own) = (Vec::new(), Vec::new());
    let mut framed = Framed::new(msg);
    for (tag, whole, payload) in framed.by_ref() {
        match (tag, payload) {
            (2, Some(payload)) => children.push((payload, whole)),
            _ => own.push(whole),
        }
    }
    (!framed.malformed()).then_some((children, own))
}

struct Splitter<'a> {
    max_records: usize,
    max_bytes: usize,
    parts: Vec<SplitPart>,
    /// The resources of the part being built.
    part: Vec<Level<'a>>,
    records: usize,
    /// Size as the decoded splitter counts it: framed records and framed
    /// resource and scope shells.
    bytes: usize,
    /// (resource, scope) of the part's last scope, counted over the request.
    at: Option<(usize, usize)>,
}

impl<'a> Splitter<'a> {
    fn resource(&mut self, resource: &'a [u8], ri: usize) -> Option<()> {
        let (scopes, own) = children_and_own(resource)?;
        for (si, (scope, _)) in scopes.into_iter().enumerate() {
            let (records, scope_own) = children_and_own(scope)?;
            for (_, record) in records {
                self.record(record, (ri, si), &own, &scope_own);
            }
        }
        Some(())
    }

    fn record(
        &mut self,
        record: &'a [u8],
        at: (usize, usize),
        resource_own: &[&'a [u8]],
        scope_own: &[&'a [u8]],
    ) {
        let size = record.len();
        if self.records > 0
            && (self.records + 1 > self.max_records || self.bytes + size > self.max_bytes)
        {
            self.flush();
        }
        if self.at.map(|(r, _)| r) != Some(at.0) {
            let shell = Level::new(resource_own.to_vec());
            self.bytes += framed(shell.body_len());
            self.part.push(shell);
        }
        let resource = self.part.last_mut().expect("a resource was pushed above");
        if self.at != Some(at) {
            let shell = Level::new(scope_own.to_vec());
            self.bytes += framed(shell.body_len());
            resource.scopes.push(shell);
            self.at = Some(at);
        }
        let scope = resource
            .scopes
            .last_mut()
            .expect("a scope was pushed above");
        scope.records.push(record);
        self.records += 1;
        self.bytes += size;
    }

    fn flush(&mut self) {
        let mut bytes = Vec::with_capacity(self.part.iter().map(|r| framed(r.body_len())).sum());
        for resource in &self.part {
            resource.write(RESOURCE_KEY, &mut bytes);
        }
        self.parts.push(SplitPart {
            bytes,
            records: self.records,
        });
        self.part.clear();
        self.records = 0;
        self.bytes = 0;
        self.at = None;
    }
}

/// The fields of a message with their bytes: `(number, bytes with the key,
/// payload if length-delimited)`, read by [`fields`]. An unknown group,
/// which [`fields`] skips, comes along in the bytes of the field after it
/// (prost skips it there as well; one at the end is dropped, as decoding
/// and encoding again drops it). After the loop, [`Framed::malformed`].
struct Framed<'a> {
    msg: &'a [u8],
    fields: Fields<'a>,
    start: usize,
}

impl<'a> Framed<'a> {
    fn new(msg: &'a [u8]) -> Self {
        Framed {
            msg,
            fields: fields(msg),
            start: 0,
        }
    }

    fn malformed(&self) -> bool {
        self.fields.is_malformed()
    }
}

impl<'a> Iterator for Framed<'a> {
    type Item = (u32, &'a [u8], Option<&'a [u8]>);

    fn next(&mut self) -> Option<Self::Item> {
        let (tag, value) = self.fields.next()?;
        let end = self.fields.offset();
        let whole = &self.msg[self.start..end];
        self.start = end;
        let payload = match value {
            WireValue::Len(payload) => Some(payload),
            _ => None,
        };
        Some((tag, whole, payload))
    }
}
