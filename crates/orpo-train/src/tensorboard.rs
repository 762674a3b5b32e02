//! TensorBoard event files (`report_to: tensorboard`): the scalars transformers'
//! `TensorBoardCallback` writes, read by `tensorboard --logdir`.
//!
//! An event file is a sequence of TFRecords, each `u64 length (LE) | u32 masked CRC32C of the
//! length bytes | data | u32 masked CRC32C of the data`, where the data is a serialised
//! `tensorflow.Event` protobuf. The first record holds `file_version: "brain.Event:2"`; each
//! scalar is one `Event { wall_time, step, summary { value { tag, simple_value } } }`, as
//! PyTorch's `SummaryWriter.add_scalar` writes it. The few protobuf fields needed are encoded by
//! hand (no schema compiler), and [`read_events`] decodes them back, checking every CRC.
//!
//! Names follow transformers' `rewrite_logs`: `eval_x` → `eval/x`, every other metric →
//! `train/x`, plus `train/epoch` with every logged entry, at the global step.
//! `scripts/check_tensorboard_events.py` reads what this writer produces with the real
//! `tensorboard` package; `tests/fixtures/tensorboard/` holds a file written here and the
//! scalars that package read from it (`crates/orpo-train/tests/tensorboard.rs`).

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use crate::metrics::LogEntry;

/// The `file_version` of the first record, as TensorFlow and PyTorch write it.
pub const FILE_VERSION: &str = "brain.Event:2";

/// Appends events to one `events.out.tfevents.*` file.
pub struct EventWriter {
    path: PathBuf,
    out: BufWriter<File>,
}

impl EventWriter {
    /// Creates `dir` and a new event file in it, named as PyTorch names them
    /// (`events.out.tfevents.<unix seconds>.<host>.<pid>.0`), and writes the version record.
    pub fn create(dir: &Path) -> io::Result<Self> {
        std::fs::create_dir_all(dir)?;
        let now = unix_now();
        let name = format!(
            "events.out.tfevents.{:010}.{}.{}.0",
            now as u64,
            hostname(),
            std::process::id()
        );
        Self::create_file(&dir.join(name), now)
    }

    /// Creates the event file `path` (truncating it) and writes the version record stamped
    /// `wall_time` (seconds since the Unix epoch).
    pub fn create_file(path: &Path, wall_time: f64) -> io::Result<Self> {
        let mut writer = Self {
            path: path.to_path_buf(),
            out: BufWriter::new(File::create(path)?),
        };
        let mut event = Vec::new();
        put_f64(&mut event, 1, wall_time);
        put_bytes(&mut event, 3, FILE_VERSION.as_bytes());
        writer.write_record(&event)?;
        writer.out.flush()?;
        Ok(writer)
    }

    /// The file written.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// One scalar event: `tag` = `value` at `step`, stamped `wall_time`.
    pub fn add_scalar(
        &mut self,
        tag: &str,
        value: f32,
        step: i64,
        wall_time: f64,
    ) -> io::Result<()> {
        let mut value_msg = Vec::new();
        put_bytes(&mut value_msg, 1, tag.as_bytes());
        put_f32(&mut value_msg, 2, value);
        let mut summary = Vec::new();
        put_bytes(&mut summary, 1, &value_msg);
        let mut event = Vec::new();
        put_f64(&mut event, 1, wall_time);
        put_varint_field(&mut event, 2, step as u64);
        put_bytes(&mut event, 5, &summary);
        self.write_record(&event)
    }

    /// Every value of a logged entry under transformers' names ([`tensorboard_tag`]), and
    /// `train/epoch`, at the entry's step, stamped now; flushed, so that a running
    /// `tensorboard` sees it.
    pub fn log_entry(&mut self, entry: &LogEntry) -> io::Result<()> {
        self.log_entry_at(entry, unix_now())
    }

    /// [`log_entry`](Self::log_entry) stamped `wall_time`.
    pub fn log_entry_at(&mut self, entry: &LogEntry, wall_time: f64) -> io::Result<()> {
        let step = entry.step as i64;
        for (name, value) in &entry.values {
            self.add_scalar(&tensorboard_tag(name), *value as f32, step, wall_time)?;
        }
        self.add_scalar("train/epoch", entry.epoch as f32, step, wall_time)?;
        tracing::debug!(
            "{}: {} scalars at step {step}",
            self.path.display(),
            entry.values.len() + 1
        );
        self.out.flush()
    }

    /// Writes buffered records to the file.
    pub fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }

    fn write_record(&mut self, data: &[u8]) -> io::Result<()> {
        let len = (data.len() as u64).to_le_bytes();
        self.out.write_all(&len)?;
        self.out.write_all(&masked_crc32c(&len).to_le_bytes())?;
        self.out.write_all(data)?;
        self.out.write_all(&masked_crc32c(data).to_le_bytes())
    }
}

/// transformers' `rewrite_logs`: `eval_loss` → `eval/loss`, `test_x` → `test/x`, `loss` →
/// `train/loss`, `rewards/accuracies` → `train/rewards/accuracies`.
pub fn tensorboard_tag(name: &str) -> String {
    if let Some(rest) = name.strip_prefix("eval_") {
        format!("eval/{rest}")
    } else if let Some(rest) = name.strip_prefix("test_") {
        format!("test/{rest}")
    } else {
        format!("train/{name}")
    }
}

/// The directory a run's event file goes in, as transformers picks it: `logging_dir` when set,
/// else `$TENSORBOARD_LOGGING_DIR`, else `<output_dir>/runs/<Mon DD_HH-MM-SS>_<host>` (the time
/// in UTC here; transformers uses local time), a new one for every run.
pub fn logging_dir(output_dir: &Path, logging_dir: Option<&str>) -> PathBuf {
    if let Some(dir) = logging_dir {
        return PathBuf::from(dir);
    }
    if let Some(dir) = std::env::var_os("TENSORBOARD_LOGGING_DIR") {
        return PathBuf::from(dir);
    }
    output_dir
        .join("runs")
        .join(format!("{}_{}", utc_stamp(unix_now() as i64), hostname()))
}

/// TensorFlow's masked CRC32C of a record's length or data.
pub fn masked_crc32c(data: &[u8]) -> u32 {
    let crc = crc32c::crc32c(data);
    (crc.rotate_right(15)).wrapping_add(0xa282_ead8)
}

/// One decoded event: its stamp, step, and what it holds.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    /// Seconds since the Unix epoch.
    pub wall_time: f64,
    /// The global step.
    pub step: i64,
    /// `file_version` (the first record).
    pub file_version: Option<String>,
    /// `(tag, simple_value)` of the summary's values.
    pub scalars: Vec<(String, f32)>,
}

/// Reads an event file back, checking the framing and both CRCs of every record; the error
/// names the file and the record's offset.
pub fn read_events(path: &Path) -> io::Result<Vec<Event>> {
    let bytes = std::fs::read(path)?;
    let bad = |offset: usize, what: &str| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{}: record at byte {offset}: {what}", path.display()),
        )
    };
    let mut events = Vec::new();
    let mut at = 0;
    while at < bytes.len() {
        let header = bytes
            .get(at..at + 12)
            .ok_or_else(|| bad(at, "truncated header"))?;
        let len_bytes = &header[..8];
        if u32::from_le_bytes(header[8..12].try_into().expect("4 bytes"))
            != masked_crc32c(len_bytes)
        {
            return Err(bad(at, "length CRC mismatch"));
        }
        let len = u64::from_le_bytes(len_bytes.try_into().expect("8 bytes")) as usize;
        let data = bytes
            .get(at + 12..at + 12 + len)
            .ok_or_else(|| bad(at, "truncated data"))?;
        let crc = bytes
            .get(at + 12 + len..at + 16 + len)
            .ok_or_else(|| bad(at, "truncated data CRC"))?;
        if u32::from_le_bytes(crc.try_into().expect("4 bytes")) != masked_crc32c(data) {
            return Err(bad(at, "data CRC mismatch"));
        }
        events.push(decode_event(data).map_err(|e| bad(at, e))?);
        at += 16 + len;
    }
    Ok(events)
}

fn decode_event(data: &[u8]) -> Result<Event, &'static str> {
    let mut event = Event {
        wall_time: 0.0,
        step: 0,
        file_version: None,
        scalars: Vec::new(),
    };
    for field in Fields(data) {
        match field? {
            (1, Field::Fixed64(bits)) => event.wall_time = f64::from_bits(bits),
            (2, Field::Varint(v)) => event.step = v as i64,
            (3, Field::Bytes(b)) => {
                event.file_version =
                    Some(String::from_utf8(b.to_vec()).map_err(|_| "file_version not UTF-8")?)
            }
            (5, Field::Bytes(summary)) => {
                for value in Fields(summary) {
                    let (1, Field::Bytes(value)) = value? else {
                        continue;
                    };
                    let (mut tag, mut simple) = (None, None);
                    for f in Fields(value) {
                        match f? {
                            (1, Field::Bytes(t)) => {
                                tag = Some(
                                    String::from_utf8(t.to_vec()).map_err(|_| "tag not UTF-8")?,
                                )
                            }
                            (2, Field::Fixed32(bits)) => simple = Some(f32::from_bits(bits)),
                            _ => {}
                        }
                    }
                    if let (Some(tag), Some(value)) = (tag, simple) {
                        event.scalars.push((tag, value));
                    }
                }
            }
            _ => {}
        }
    }
    Ok(event)
}

enum Field<'a> {
    Varint(u64),
    Fixed64(u64),
    Bytes(&'a [u8]),
    Fixed32(u32),
}

/// The `(field number, value)` pairs of a protobuf message.
struct Fields<'a>(&'a [u8]);

impl<'a> Iterator for Fields<'a> {
    type Item = Result<(u32, Field<'a>), &'static str>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.0.is_empty() {
            return None;
        }
        let mut parse = || {
            let key = take_varint(&mut self.0)?;
            let field = match key & 7 {
                0 => Field::Varint(take_varint(&mut self.0)?),
                1 => Field::Fixed64(u64::from_le_bytes(
                    take(&mut self.0, 8)?.try_into().unwrap(),
                )),
                2 => {
                    let len = take_varint(&mut self.0)? as usize;
                    Field::Bytes(take(&mut self.0, len)?)
                }
                5 => Field::Fixed32(u32::from_le_bytes(
                    take(&mut self.0, 4)?.try_into().unwrap(),
                )),
                _ => return Err("unsupported protobuf wire type"),
            };
            Ok(((key >> 3) as u32, field))
        };
        let item = parse();
        if item.is_err() {
            self.0 = &[];
        }
        Some(item)
    }
}

fn take<'a>(data: &mut &'a [u8], n: usize) -> Result<&'a [u8], &'static str> {
    if data.len() < n {
        return Err("truncated protobuf field");
    }
    let (head, tail) = data.split_at(n);
    *data = tail;
    Ok(head)
}

fn take_varint(data: &mut &[u8]) -> Result<u64, &'static str> {
    let mut value = 0u64;
    for shift in (0..64).step_by(7) {
        let byte = *take(data, 1)?.first().expect("one byte");
        value |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Ok(value);
        }
    }
    Err("varint longer than 10 bytes")
}

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn put_varint_field(out: &mut Vec<u8>, field: u32, v: u64) {
    put_varint(out, u64::from(field) << 3);
    put_varint(out, v);
}

fn put_f64(out: &mut Vec<u8>, field: u32, v: f64) {
    put_varint(out, (u64::from(field) << 3) | 1);
    out.extend_from_slice(&v.to_le_bytes());
}

fn put_f32(out: &mut Vec<u8>, field: u32, v: f32) {
    put_varint(out, (u64::from(field) << 3) | 5);
    out.extend_from_slice(&v.to_le_bytes());
}

fn put_bytes(out: &mut Vec<u8>, field: u32, bytes: &[u8]) {
    put_varint(out, (u64::from(field) << 3) | 2);
    put_varint(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// The host name as the event file's name carries it (characters other than letters, digits,
/// `-` and `_` replaced by `_`, so it stays one path component).
fn hostname() -> String {
    let raw = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .or_else(|| std::env::var("COMPUTERNAME").ok())
        .unwrap_or_default();
    let name: String = raw
        .trim()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if name.is_empty() {
        "localhost".into()
    } else {
        name
    }
}

/// `Mon DD_HH-MM-SS` of a Unix time in UTC (transformers' `default_logdir` format).
fn utc_stamp(unix: i64) -> String {
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let days = unix.div_euclid(86_400);
    let secs = unix.rem_euclid(86_400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    format!(
        "{}{:02}_{:02}-{:02}-{:02}",
        MONTHS[(month - 1) as usize],
        day,
        secs / 3600,
        (secs % 3600) / 60,
        secs % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_follow_transformers_rewrite_logs() {
        assert_eq!(tensorboard_tag("loss"), "train/loss");
        assert_eq!(
            tensorboard_tag("rewards/accuracies"),
            "train/rewards/accuracies"
        );
        assert_eq!(tensorboard_tag("eval_loss"), "eval/loss");
        assert_eq!(tensorboard_tag("eval_logps/chosen"), "eval/logps/chosen");
        assert_eq!(tensorboard_tag("test_loss"), "test/loss");
    }

    #[test]
    fn utc_stamps_are_civil_dates() {
        assert_eq!(utc_stamp(0), "Jan01_00-00-00");
        // 2024-02-29 13:14:15 UTC (a leap day).
        assert_eq!(utc_stamp(1_709_212_455), "Feb29_13-14-15");
        // 2026-12-31 23:59:59 UTC.
        assert_eq!(utc_stamp(1_798_761_599), "Dec31_23-59-59");
    }

    #[test]
    fn masked_crc_matches_tensorflow() {
        // crc32c("123456789") = 0xE3069283 (the CRC-32C check value), masked as TensorFlow's
        // `MaskedCrc`: rotate right by 15, add 0xa282ead8.
        assert_eq!(crc32c::crc32c(b"123456789"), 0xE306_9283);
        assert_eq!(
            masked_crc32c(b"123456789"),
            0xE306_9283u32.rotate_right(15).wrapping_add(0xa282_ead8)
        );
    }

    #[test]
    fn a_corrupted_record_is_refused_with_its_offset() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("events.out.tfevents.test");
        let mut w = EventWriter::create_file(&path, 1.0).unwrap();
        w.add_scalar("train/loss", 0.5, 3, 2.0).unwrap();
        w.flush().unwrap();
        let events = read_events(&path).unwrap();
        assert_eq!(events.len(), 2);
        assert_eq!(events[1].scalars, [("train/loss".to_string(), 0.5)]);
        let mut bytes = std::fs::read(&path).unwrap();
        let last = bytes.len() - 6;
        bytes[last] ^= 1;
        std::fs::write(&path, &bytes).unwrap();
        let err = read_events(&path).unwrap_err().to_string();
        assert!(
            err.contains("data CRC mismatch") && err.contains("record at byte"),
            "{err}"
        );
    }
}
