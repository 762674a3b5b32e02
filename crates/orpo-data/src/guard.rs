//! Defences around the `parquet` crate for untrusted files (found by fuzzing, see
//! `docs/reliability.md`).
//!
//! `parquet` 57 panics on some malformed footers (`Option::unwrap` in its Thrift decoder, an
//! unwrap in `arrow-ipc` on a bad embedded Arrow schema, `capacity overflow`) and, worse, sizes
//! vectors from untrusted Thrift list lengths (`Vec::with_capacity` of hundreds of gigabytes: an
//! allocation failure aborts the process, it cannot be caught; upstream apache/arrow-rs#9874).
//! So before `parquet` sees a file, [`check_parquet_footer`] walks its footer's Thrift
//! compact-protocol encoding and rejects lengths that exceed the bytes holding them, and
//! [`catch_panic`] turns any remaining panic of the decoder into an error.

use std::cell::Cell;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::Path;
use std::sync::Once;

thread_local! {
    static GUARDED: Cell<bool> = const { Cell::new(false) };
}

/// Runs `f`, returning the message of a panic inside it as an error. The panic hook is not run
/// for such panics (a chained hook, installed once, skips panics inside `catch_panic` on the
/// current thread and passes every other panic to the hook that was there before), so a
/// caught decoder panic prints nothing. With `panic = "abort"` nothing can be caught.
pub(crate) fn catch_panic<T>(f: impl FnOnce() -> T) -> Result<T, String> {
    static HOOK: Once = Once::new();
    HOOK.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if !GUARDED.get() {
                previous(info);
            }
        }));
    });
    let outer = GUARDED.replace(true);
    let result = catch_unwind(AssertUnwindSafe(f));
    GUARDED.set(outer);
    result.map_err(|payload| {
        payload
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_else(|| "unknown panic".into())
    })
}

/// Largest footer looked at (the metadata of a Parquet file is kilobytes to a few megabytes).
const MAX_FOOTER: u64 = 256 << 20;
/// Deepest nesting of Thrift structs and lists accepted (Parquet's metadata nests a few levels).
const MAX_DEPTH: u32 = 64;

/// Checks the footer of a Parquet file (`<metadata> <u32 length> PAR1`) the way `parquet`
/// will decode it: fields of the Parquet metadata structs by id (as `parquet` does, whatever
/// their wire type), anything else skipped by wire type (as `parquet` skips it). A known field
/// whose wire type is not its declared one, or a list, string or nesting beyond the bytes that
/// hold it, is an error. A file that does not end like Parquet is left to `parquet` to report.
pub(crate) fn check_parquet_footer(path: &Path) -> Result<(), String> {
    let mut file = File::open(path).map_err(|e| e.to_string())?;
    let len = file.metadata().map_err(|e| e.to_string())?.len();
    if len < 12 {
        return Ok(());
    }
    let mut tail = [0u8; 8];
    file.seek(SeekFrom::Start(len - 8))
        .and_then(|_| file.read_exact(&mut tail))
        .map_err(|e| e.to_string())?;
    if &tail[4..] != b"PAR1" {
        return Ok(());
    }
    let meta_len = u64::from(u32::from_le_bytes([tail[0], tail[1], tail[2], tail[3]]));
    if meta_len + 8 > len || meta_len > MAX_FOOTER {
        return Ok(());
    }
    let mut meta = vec![0u8; meta_len as usize];
    file.seek(SeekFrom::Start(len - 8 - meta_len))
        .and_then(|_| file.read_exact(&mut meta))
        .map_err(|e| e.to_string())?;
    check_file_metadata(&meta)
}

/// Checks the Thrift encoding of a Parquet `FileMetaData`.
fn check_file_metadata(bytes: &[u8]) -> Result<(), String> {
    Compact { buf: bytes, pos: 0 }
        .typed_struct(FILE_META_DATA, 0)
        .map_err(|e| format!("malformed footer metadata: {e}"))
}

/// A declared Thrift type of the Parquet format (`parquet.thrift`); enums are `I32`.
#[derive(Clone, Copy)]
enum Ty {
    Bool,
    Byte,
    I16,
    I32,
    I64,
    Double,
    Binary,
    List(&'static Ty),
    Struct(&'static [(i16, Ty)]),
}

impl Ty {
    /// Whether a compact-protocol wire type encodes this type.
    fn matches(self, wire: u8) -> bool {
        match self {
            Ty::Bool => wire == 1 || wire == 2,
            Ty::Byte => wire == 3,
            Ty::I16 => wire == 4,
            Ty::I32 => wire == 5,
            Ty::I64 => wire == 6,
            Ty::Double => wire == 7,
            Ty::Binary => wire == 8,
            Ty::List(_) => wire == 9,
            Ty::Struct(_) => wire == 12,
        }
    }
}

// The structs `parquet` 57 decodes from a footer, with the fields it decodes by id.
use Ty::{Binary, Bool, Byte, Double, I16, I32, I64, List, Struct};
const EMPTY: &[(i16, Ty)] = &[];
const TIME_UNIT: &[(i16, Ty)] = &[(1, Struct(EMPTY)), (2, Struct(EMPTY)), (3, Struct(EMPTY))];
const TIME_TYPE: &[(i16, Ty)] = &[(1, Bool), (2, Struct(TIME_UNIT))];
const LOGICAL_TYPE: &[(i16, Ty)] = &[
    (1, Struct(EMPTY)),
    (2, Struct(EMPTY)),
    (3, Struct(EMPTY)),
    (4, Struct(EMPTY)),
    (5, Struct(&[(1, I32), (2, I32)])),
    (6, Struct(EMPTY)),
    (7, Struct(TIME_TYPE)),
    (8, Struct(TIME_TYPE)),
    (10, Struct(&[(1, Byte), (2, Bool)])),
    (11, Struct(EMPTY)),
    (12, Struct(EMPTY)),
    (13, Struct(EMPTY)),
    (14, Struct(EMPTY)),
    (15, Struct(EMPTY)),
    (16, Struct(&[(1, Byte)])),
    (17, Struct(&[(1, Binary)])),
    (18, Struct(&[(1, Binary), (2, I32)])),
];
const SCHEMA_ELEMENT: &[(i16, Ty)] = &[
    (1, I32),
    (2, I32),
    (3, I32),
    (4, Binary),
    (5, I32),
    (6, I32),
    (7, I32),
    (8, I32),
    (9, I32),
    (10, Struct(LOGICAL_TYPE)),
];
const KEY_VALUE: &[(i16, Ty)] = &[(1, Binary), (2, Binary)];
const STATISTICS: &[(i16, Ty)] = &[
    (1, Binary),
    (2, Binary),
    (3, I64),
    (4, I64),
    (5, Binary),
    (6, Binary),
    (7, Bool),
    (8, Bool),
];
const BOUNDING_BOX: &[(i16, Ty)] = &[
    (1, Double),
    (2, Double),
    (3, Double),
    (4, Double),
    (5, Double),
    (6, Double),
    (7, Double),
    (8, Double),
];
const COLUMN_META_DATA: &[(i16, Ty)] = &[
    (1, I32),
    (2, List(&I32)),
    (3, List(&Binary)),
    (4, I32),
    (5, I64),
    (6, I64),
    (7, I64),
    (8, List(&Struct(KEY_VALUE))),
    (9, I64),
    (10, I64),
    (11, I64),
    (12, Struct(STATISTICS)),
    (13, List(&Struct(&[(1, I32), (2, I32), (3, I32)]))),
    (14, I64),
    (15, I32),
    (16, Struct(&[(1, I64), (2, List(&I64)), (3, List(&I64))])),
    (17, Struct(&[(1, Struct(BOUNDING_BOX)), (2, List(&I32))])),
];
const COLUMN_CHUNK: &[(i16, Ty)] = &[
    (1, Binary),
    (2, I64),
    (3, Struct(COLUMN_META_DATA)),
    (4, I64),
    (5, I32),
    (6, I64),
    (7, I32),
    (
        8,
        Struct(&[
            (1, Struct(EMPTY)),
            (2, Struct(&[(1, List(&Binary)), (2, Binary)])),
        ]),
    ),
    (9, Binary),
];
const ROW_GROUP: &[(i16, Ty)] = &[
    (1, List(&Struct(COLUMN_CHUNK))),
    (2, I64),
    (3, I64),
    (4, List(&Struct(&[(1, I32), (2, Bool), (3, Bool)]))),
    (5, I64),
    (6, I64),
    (7, I16),
];
const AES_GCM: &[(i16, Ty)] = &[(1, Binary), (2, Binary), (3, Bool)];
const FILE_META_DATA: &[(i16, Ty)] = &[
    (1, I32),
    (2, List(&Struct(SCHEMA_ELEMENT))),
    (3, I64),
    (4, List(&Struct(ROW_GROUP))),
    (5, List(&Struct(KEY_VALUE))),
    (6, Binary),
    (7, List(&Struct(&[(1, Struct(EMPTY))]))),
    (8, Struct(&[(1, Struct(AES_GCM)), (2, Struct(AES_GCM))])),
    (9, Binary),
];

/// A reader of Thrift's compact protocol that checks every length against the bytes left.
struct Compact<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl Compact<'_> {
    fn remaining(&self) -> u64 {
        (self.buf.len() - self.pos) as u64
    }

    fn byte(&mut self) -> Result<u8, String> {
        let b = *self
            .buf
            .get(self.pos)
            .ok_or_else(|| format!("ends early at byte {}", self.pos))?;
        self.pos += 1;
        Ok(b)
    }

    fn varint(&mut self) -> Result<u64, String> {
        let mut value = 0u64;
        for shift in (0..64).step_by(7) {
            let b = self.byte()?;
            value |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(format!(
            "a varint longer than 10 bytes at byte {}",
            self.pos
        ))
    }

    fn skip(&mut self, n: u64) -> Result<(), String> {
        if n > self.remaining() {
            return Err(format!(
                "a length of {n} at byte {} exceeds the {} bytes left",
                self.pos,
                self.remaining()
            ));
        }
        self.pos += n as usize;
        Ok(())
    }

    /// A field header: `None` at the end of a struct, else the field id and wire type.
    fn field(&mut self, last_id: i16) -> Result<Option<(i16, u8)>, String> {
        let header = self.byte()?;
        let wire = header & 0x0f;
        if wire == 0 {
            return Ok(None);
        }
        let delta = i16::from(header >> 4);
        let id = if delta == 0 {
            let zigzag = self.varint()?;
            i16::try_from((zigzag >> 1) as i64 ^ -((zigzag & 1) as i64))
                .map_err(|_| format!("field id out of range at byte {}", self.pos))?
        } else {
            last_id
                .checked_add(delta)
                .ok_or_else(|| format!("field id out of range at byte {}", self.pos))?
        };
        Ok(Some((id, wire)))
    }

    /// A list header: the element wire type and the element count (at most the bytes left).
    fn list_header(&mut self) -> Result<(u8, u64), String> {
        let header = self.byte()?;
        let mut n = u64::from(header >> 4);
        if n == 15 {
            n = self.varint()?;
        }
        if n > self.remaining() {
            return Err(format!(
                "a list of {n} elements at byte {} exceeds the {} bytes left",
                self.pos,
                self.remaining()
            ));
        }
        Ok((header & 0x0f, n))
    }

    /// A struct whose known fields are decoded as declared, as `parquet` decodes them.
    fn typed_struct(&mut self, fields: &[(i16, Ty)], depth: u32) -> Result<(), String> {
        if depth > MAX_DEPTH {
            return Err("nested too deeply".into());
        }
        let mut last = 0;
        while let Some((id, wire)) = self.field(last)? {
            match fields.iter().find(|(known, _)| *known == id) {
                Some(&(_, ty)) if ty.matches(wire) => self.typed(ty, depth)?,
                Some(_) => {
                    return Err(format!(
                        "field {id} has wire type {wire}, not its declared type (byte {})",
                        self.pos
                    ));
                }
                None => self.skip_value(wire, depth)?,
            }
            last = id;
        }
        Ok(())
    }

    /// A value of a declared type (a boolean field's value is in its header).
    fn typed(&mut self, ty: Ty, depth: u32) -> Result<(), String> {
        match ty {
            Ty::Bool => Ok(()),
            Ty::Byte => self.skip(1),
            Ty::I16 | Ty::I32 | Ty::I64 => self.varint().map(drop),
            Ty::Double => self.skip(8),
            Ty::Binary => {
                let n = self.varint()?;
                self.skip(n)
            }
            Ty::List(element) => {
                if self.buf.get(self.pos) == Some(&0) {
                    // An empty list written with element type 0, which `parquet` accepts.
                    self.pos += 1;
                    return Ok(());
                }
                let (wire, n) = self.list_header()?;
                if !element.matches(wire) {
                    return Err(format!(
                        "list elements of wire type {wire}, not the declared type (byte {})",
                        self.pos
                    ));
                }
                for _ in 0..n {
                    self.typed(*element, depth + 1)?;
                }
                Ok(())
            }
            Ty::Struct(fields) => self.typed_struct(fields, depth + 1),
        }
    }

    /// Skips a value of an unknown field by its wire type, consuming exactly what `parquet`'s
    /// `skip` consumes (booleans nothing, even as list elements); sets and maps, which
    /// `parquet` cannot skip either, are errors.
    fn skip_value(&mut self, wire: u8, depth: u32) -> Result<(), String> {
        if depth > MAX_DEPTH {
            return Err("nested too deeply".into());
        }
        match wire {
            1 | 2 => Ok(()),
            3 => self.skip(1),
            4..=6 => self.varint().map(drop),
            7 => self.skip(8),
            8 => {
                let n = self.varint()?;
                self.skip(n)
            }
            9 => {
                let (element, n) = self.list_header()?;
                for _ in 0..n {
                    self.skip_value(element, depth + 1)?;
                }
                Ok(())
            }
            12 => {
                let mut last = 0;
                while let Some((id, wire)) = self.field(last)? {
                    self.skip_value(wire, depth + 1)?;
                    last = id;
                }
                Ok(())
            }
            other => Err(format!(
                "unsupported wire type {other} at byte {}",
                self.pos
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_real_footers() {
        // The bundled datasets and the fuzzing seeds (pyarrow: statistics, dictionaries, row
        // groups, nested lists, compressions).
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        let mut checked = 0;
        for dir in [
            "datasets/arith-prefs/data",
            "datasets/arith-prefs-chat/data",
            "datasets/arith-small-chat/data",
            "fuzz/seeds/dataset_parquet",
        ] {
            for entry in std::fs::read_dir(root.join(dir)).unwrap() {
                let path = entry.unwrap().path();
                check_parquet_footer(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
                checked += 1;
            }
        }
        assert!(checked >= 12);
    }

    #[test]
    fn rejects_what_parquet_would_misread() {
        // FileMetaData field 2 (schema, a list) claiming 2^31 - 1 elements in 7 bytes.
        let err =
            check_file_metadata(&[0x29, 0xfc, 0xff, 0xff, 0xff, 0xff, 0x07, 0x00]).unwrap_err();
        assert!(err.contains("list of 2147483647"), "{err}");
        // Field 2 sent as an i32: `parquet` would read a list header from its varint.
        let err = check_file_metadata(&[0x25, 0xfa, 0xe7, 0xf7, 0x8d, 0x01, 0x00]).unwrap_err();
        assert!(err.contains("field 2 has wire type 5"), "{err}");
        // An unknown field (id 20) holding a string longer than the input.
        let err = check_file_metadata(&[0x08, 0x28, 0xff, 0x01, b'a', 0x00]).unwrap_err();
        assert!(err.contains("length of 255"), "{err}");
        assert!(check_file_metadata(&[0x15]).is_err());
        // Unknown structs nested 200 deep.
        let deep = [[0x0c, 0x28].repeat(200), vec![0; 201]].concat();
        assert!(check_file_metadata(&deep).unwrap_err().contains("deeply"));
        // Well-formed: version 1, an empty schema list, num_rows 0, an unknown field, stop.
        check_file_metadata(&[
            0x15, 0x02, 0x19, 0x0c, 0x16, 0x00, 0x08, 0x28, 0x01, b'x', 0x00,
        ])
        .unwrap();
    }

    #[test]
    fn caught_panics_become_errors() {
        assert_eq!(catch_panic(|| 3), Ok(3));
        let err = catch_panic(|| -> u8 { panic!("decoder bug {}", 7) }).unwrap_err();
        assert_eq!(err, "decoder bug 7");
        // The guard is per call: a later panic outside it is not swallowed.
        assert!(std::panic::catch_unwind(|| panic!("outside")).is_err());
    }
}
