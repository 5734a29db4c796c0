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
