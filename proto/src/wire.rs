//! STUB (replaced by the wire branch): the minimum the views need.

/// One field of a protobuf message as read from the wire.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum WireValue<'a> {
    Varint(u64),
    Fixed64(u64),
    Len(&'a [u8]),
    Fixed32(u32),
}

/// Iterator over the (field number, value) pairs of one message's bytes.
#[derive(Clone)]
pub struct Fields<'a> {
    buf: &'a [u8],
}

pub fn fields(message: &[u8]) -> Fields<'_> {
    Fields { buf: message }
}

fn varint(buf: &mut &[u8]) -> Option<u64> {
    let mut v = 0u64;
    for i in 0..10 {
        let (&b, rest) = buf.split_first()?;
        *buf = rest;
        v |= u64::from(b & 0x7f) << (7 * i);
        if b < 0x80 {
            return Some(v);
        }
    }
    None
}

impl<'a> Iterator for Fields<'a> {
    type Item = (u32, WireValue<'a>);
    fn next(&mut self) -> Option<Self::Item> {
        if self.buf.is_empty() {
            return None;
        }
        let key = varint(&mut self.buf)?;
        let field = (key >> 3) as u32;
        let value = match key & 7 {
            0 => WireValue::Varint(varint(&mut self.buf)?),
            1 => {
                let (b, rest) = self.buf.split_first_chunk::<8>()?;
                self.buf = rest;
                WireValue::Fixed64(u64::from_le_bytes(*b))
            }
            2 => {
                let n = varint(&mut self.buf)? as usize;
                if n > self.buf.len() {
                    self.buf = &[];
                    return None;
                }
                let (v, rest) = self.buf.split_at(n);
                self.buf = rest;
                WireValue::Len(v)
            }
            5 => {
                let (b, rest) = self.buf.split_first_chunk::<4>()?;
                self.buf = rest;
                WireValue::Fixed32(u32::from_le_bytes(*b))
            }
            _ => {
                self.buf = &[];
                return None;
            }
        };
        Some((field, value))
    }
}

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

pub fn put_bytes_field(out: &mut Vec<u8>, field: u32, value: &[u8]) {
    put_varint(out, u64::from(field) << 3 | 2);
    put_varint(out, value.len() as u64);
    out.extend_from_slice(value);
}

pub fn put_string_attribute(out: &mut Vec<u8>, field: u32, key: &str, value: &str) {
    let any_len = 1 + prost::encoding::encoded_len_varint(value.len() as u64) + value.len();
    let kv_len = 1
        + prost::encoding::encoded_len_varint(key.len() as u64)
        + key.len()
        + 1
        + prost::encoding::encoded_len_varint(any_len as u64)
        + any_len;
    put_varint(out, u64::from(field) << 3 | 2);
    put_varint(out, kv_len as u64);
    put_bytes_field(out, 1, key.as_bytes());
    put_varint(out, 2 << 3 | 2);
    put_varint(out, any_len as u64);
    put_bytes_field(out, 1, value.as_bytes());
}

pub fn validate_logs_request(buf: &[u8]) -> Result<usize, String> {
    use prost::Message;
    crate::otlp::collector::logs::v1::ExportLogsServiceRequest::decode(buf)
        .map(|r| r.resource_logs.iter().flat_map(|r| &r.scope_logs).map(|s| s.log_records.len()).sum())
        .map_err(|e| e.to_string())
}

pub fn splice_logs_request(_buf: &[u8], _extras: &[u8], _ends: &[u32], _out: &mut Vec<u8>) {
    unimplemented!()
}
