//! TensorBoard event files: the TFRecord framing (u64 LE length, masked
//! CRC32C of the length, the record, masked CRC32C of the record) around
//! `tensorflow.Event` protobuf messages, the subset a scalar log needs
//! (`file_version`, `summary` with `simple_value`s, `session_log`), encoded
//! with prost's derive (no protoc at build time). The reader stops at the
//! first record that is cut short or fails its CRC (the tail of a file
//! whose writer was killed), so whatever it returns was written whole.
use anyhow::{Context, Result};
use prost::Message;
use std::io::{Read, Write};
use std::path::Path;

/// `tensorflow.Event` (tensorflow/core/util/event.proto), fields 1, 2, 3, 5, 7.
#[derive(Clone, PartialEq, Message)]
pub struct Event {
    #[prost(double, tag = "1")]
    pub wall_time: f64,
    #[prost(int64, tag = "2")]
    pub step: i64,
    #[prost(oneof = "What", tags = "3, 5, 7")]
    pub what: Option<What>,
}

#[derive(Clone, PartialEq, prost::Oneof)]
pub enum What {
    #[prost(string, tag = "3")]
    FileVersion(String),
    #[prost(message, tag = "5")]
    Summary(Summary),
    #[prost(message, tag = "7")]
    SessionLog(SessionLog),
}

/// `tensorflow.Summary`.
#[derive(Clone, PartialEq, Message)]
pub struct Summary {
    #[prost(message, repeated, tag = "1")]
    pub value: Vec<Value>,
}

/// `tensorflow.Summary.Value` with its `simple_value` (a oneof member in
/// the .proto, so a 0.0 is still written and read as present).
#[derive(Clone, PartialEq, Message)]
pub struct Value {
    #[prost(string, tag = "1")]
    pub tag: String,
    #[prost(oneof = "Scalar", tags = "2")]
    pub value: Option<Scalar>,
}

#[derive(Clone, PartialEq, prost::Oneof)]
pub enum Scalar {
    #[prost(float, tag = "2")]
    SimpleValue(f32),
}

/// `tensorflow.SessionLog`: `status` 1 = START (TensorBoard then drops the
/// events it holds at or after this event's step: a restart).
#[derive(Clone, PartialEq, Message)]
pub struct SessionLog {
    #[prost(int32, tag = "1")]
    pub status: i32,
}

pub const SESSION_START: i32 = 1;
/// The `file_version` TensorBoard expects first in a file.
pub const FILE_VERSION: &str = "brain.Event:2";

/// TFRecord's masked CRC32C.
pub fn masked_crc(b: &[u8]) -> u32 {
    let c = crc32c::crc32c(b);
    (c.rotate_right(15)).wrapping_add(0xa282_ead8)
}

impl Event {
    pub fn scalar(wall_time: f64, step: i64, tag: &str, v: f64) -> Event {
        Event {
            wall_time,
            step,
            what: Some(What::Summary(Summary {
                value: vec![Value {
                    tag: tag.to_string(),
                    value: Some(Scalar::SimpleValue(v as f32)),
                }],
            })),
        }
    }

    /// The (tag, value) pairs of a summary event.
    pub fn scalars(&self) -> Vec<(&str, f32)> {
        match &self.what {
            Some(What::Summary(s)) => s
                .value
                .iter()
                .filter_map(|v| {
                    v.value
                        .as_ref()
                        .map(|Scalar::SimpleValue(x)| (v.tag.as_str(), *x))
                })
                .collect(),
            _ => vec![],
        }
    }
}

/// Appends one framed record.
pub fn write_record(w: &mut impl Write, e: &Event) -> std::io::Result<()> {
    let body = e.encode_to_vec();
    let len = (body.len() as u64).to_le_bytes();
    w.write_all(&len)?;
    w.write_all(&masked_crc(&len).to_le_bytes())?;
    w.write_all(&body)?;
    w.write_all(&masked_crc(&body).to_le_bytes())
}

/// Every whole record of `bytes`, up to the first torn or corrupt one.
pub fn read_records(bytes: &[u8]) -> Vec<Event> {
    let mut out = Vec::new();
    let mut at = 0usize;
    while bytes.len() >= at + 12 {
        let len_bytes = &bytes[at..at + 8];
        let crc = u32::from_le_bytes(bytes[at + 8..at + 12].try_into().unwrap());
        if crc != masked_crc(len_bytes) {
            break;
        }
        let len = u64::from_le_bytes(len_bytes.try_into().unwrap()) as usize;
        let start = at + 12;
        let Some(end) = start.checked_add(len).filter(|&e| e + 4 <= bytes.len()) else {
            break;
        };
        let body = &bytes[start..end];
        let crc = u32::from_le_bytes(bytes[end..end + 4].try_into().unwrap());
        if crc != masked_crc(body) {
            break;
        }
        match Event::decode(body) {
            Ok(e) => out.push(e),
            Err(_) => break,
        }
        at = end + 4;
    }
    out
}

/// Reads an event file (see [`read_records`]).
pub fn read_file(path: &Path) -> Result<Vec<Event>> {
    let mut b = Vec::new();
    std::fs::File::open(path)
        .and_then(|mut f| f.read_to_end(&mut b))
        .with_context(|| format!("{}: cannot read", path.display()))?;
    Ok(read_records(&b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc_is_tfrecords_masked_castagnoli_crc() {
        // The Castagnoli CRC check value of "123456789" is 0xe3069283;
        // masked ((c >> 15 | c << 17) + 0xa282ead8, mod 2^32), by hand.
        assert_eq!(crc32c::crc32c(b"123456789"), 0xe306_9283);
        assert_eq!(masked_crc(b"123456789"), 0xc78a_b0e5);
    }

    #[test]
    fn round_trip_keeps_zero_values_and_stops_at_a_torn_tail() {
        let mut buf = Vec::new();
        let evs = [
            Event {
                wall_time: 1.5,
                step: 0,
                what: Some(What::FileVersion(FILE_VERSION.into())),
            },
            Event::scalar(2.0, 3, "train/kl", 0.0),
            Event::scalar(2.5, 4, "test/top1", 51.25),
        ];
        for e in &evs {
            write_record(&mut buf, e).unwrap();
        }
        assert_eq!(read_records(&buf), evs);
        assert_eq!(read_records(&buf)[1].scalars(), vec![("train/kl", 0.0f32)]);
        // The zero is on the wire (field 2, fixed32): a reader sees it set.
        let body = evs[1].encode_to_vec();
        assert!(body.windows(5).any(|w| w == [0x15, 0, 0, 0, 0]), "{body:?}");
        for cut in 1..12 {
            assert_eq!(read_records(&buf[..buf.len() - cut]).len(), 2, "cut {cut}");
        }
        let mut bad = buf.clone();
        let n = bad.len();
        bad[n - 6] ^= 1;
        assert_eq!(
            read_records(&bad).len(),
            2,
            "a corrupt record ends the file"
        );
    }
}
