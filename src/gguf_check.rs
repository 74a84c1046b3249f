//! A walk over a GGUF header before candle reads it, so that a corrupt or hostile file is refused before anything
//! is allocated for it. candle's reader trusts the lengths it reads (a string or an array that says it holds 2^60
//! items gets a buffer of that size); here every declared length must fit in what is left of the file, arrays may
//! nest only a few levels, and a tensor has at most four dimensions whose product does not overflow. Nothing is
//! kept: the walk only skips over the bytes it checks.

use std::io::{Read, Seek, SeekFrom};

use crate::error::{Error, Result};

/// GGML tensors have at most four dimensions.
const MAX_DIMS: u32 = 4;
/// Arrays of arrays: deeper than this is not a model file.
const MAX_NESTING: u32 = 3;

struct Walker<'a, R> {
    reader: &'a mut R,
    pos: u64,
    len: u64,
    /// GGUF v1 stores counts and lengths as u32; v2 and v3 as u64.
    wide: bool,
}

fn corrupt(what: String) -> Error {
    Error::Model(format!("the GGUF header is corrupt or hostile: {what}"))
}

impl<R: Read + Seek> Walker<'_, R> {
    fn left(&self) -> u64 {
        self.len.saturating_sub(self.pos)
    }

    fn bytes<const N: usize>(&mut self, what: &str) -> Result<[u8; N]> {
        let mut b = [0u8; N];
        if self.left() < N as u64 || self.reader.read_exact(&mut b).is_err() {
            return Err(corrupt(format!("{what} at byte {} runs past the end of the file", self.pos)));
        }
        self.pos += N as u64;
        Ok(b)
    }

    fn u32(&mut self, what: &str) -> Result<u32> {
        Ok(u32::from_le_bytes(self.bytes(what)?))
    }

    fn u64(&mut self, what: &str) -> Result<u64> {
        Ok(u64::from_le_bytes(self.bytes(what)?))
    }

    fn count(&mut self, what: &str) -> Result<u64> {
        if self.wide {
            self.u64(what)
        } else {
            Ok(u64::from(self.u32(what)?))
        }
    }

    /// Skips `n` bytes that must be in the file.
    fn skip(&mut self, n: u64, what: &str) -> Result<()> {
        if n > self.left() {
            return Err(corrupt(format!("{what} at byte {} says it holds {n} bytes; {} are left", self.pos, self.left())));
        }
        self.reader.seek(SeekFrom::Current(n as i64))?;
        self.pos += n;
        Ok(())
    }

    fn string(&mut self, what: &str) -> Result<()> {
        let n = self.count(what)?;
        self.skip(n, what)
    }

    /// The size of one value of a fixed-size type, or None for strings and arrays.
    fn fixed_size(value_type: u32, what: &str) -> Result<Option<u64>> {
        Ok(match value_type {
            0 | 1 | 7 => Some(1),
            2 | 3 => Some(2),
            4..=6 => Some(4),
            10..=12 => Some(8),
            8 | 9 => None,
            t => return Err(corrupt(format!("{what} has the unknown value type {t}"))),
        })
    }

    fn value(&mut self, value_type: u32, depth: u32, what: &str) -> Result<()> {
        match (Self::fixed_size(value_type, what)?, value_type) {
            (Some(size), _) => self.skip(size, what),
            (None, 8) => self.string(what),
            _ => {
                if depth >= MAX_NESTING {
                    return Err(corrupt(format!("{what} nests arrays more than {MAX_NESTING} deep")));
                }
                let item_type = self.u32(what)?;
                let n = self.count(what)?;
                // Every item takes at least one byte (a string or an array at least its length field).
                let least = Self::fixed_size(item_type, what)?.unwrap_or(if self.wide { 8 } else { 4 });
                if n.checked_mul(least).is_none_or(|b| b > self.left()) {
                    return Err(corrupt(format!("{what} says it holds {n} items; the file has {} bytes left", self.left())));
                }
                match Self::fixed_size(item_type, what)? {
                    Some(size) => self.skip(n * size, what),
                    None => (0..n).try_for_each(|_| self.value(item_type, depth + 1, what)),
                }
            }
        }
    }
}

/// Checks the header of the GGUF in `reader` (`len` bytes), then rewinds it to the start.
pub fn check_header<R: Read + Seek>(reader: &mut R, len: u64) -> Result<()> {
    reader.seek(SeekFrom::Start(0))?;
    let mut w = Walker { reader, pos: 0, len, wide: true };
    if w.bytes::<4>("the magic").ok().as_ref() != Some(b"GGUF") {
        return Err(Error::Model("not a GGUF file (it does not start with the bytes `GGUF`)".into()));
    }
    let version = w.u32("the version")?;
    if !(1..=3).contains(&version) {
        return Err(corrupt(format!("GGUF version {version} (1 to 3 are known)")));
    }
    w.wide = version >= 2;
    let tensors = w.count("the tensor count")?;
    let entries = w.count("the metadata count")?;
    // A metadata entry takes at least a key length, a type and one byte; a tensor entry a name length, a dimension
    // count, a type and an offset.
    let (entry_least, tensor_least) = if w.wide { (13, 24) } else { (9, 20) };
    for (n, least, what) in [(entries, entry_least, "metadata entries"), (tensors, tensor_least, "tensors")] {
        if n.checked_mul(least).is_none_or(|b| b > w.left()) {
            return Err(corrupt(format!("it declares {n} {what}, more than its {len} bytes can hold")));
        }
    }
    for i in 0..entries {
        let what = format!("metadata entry {i}");
        w.string(&what)?;
        let value_type = w.u32(&what)?;
        w.value(value_type, 0, &what)?;
    }
    for i in 0..tensors {
        let what = format!("tensor {i}");
        w.string(&what)?;
        let dims = w.u32(&what)?;
        if dims > MAX_DIMS {
            return Err(corrupt(format!("{what} has {dims} dimensions (at most {MAX_DIMS})")));
        }
        let mut elements: u64 = 1;
        for _ in 0..dims {
            let d = w.count(&what)?;
            elements = elements
                .checked_mul(d)
                .filter(|&e| e <= len.saturating_mul(8))
                .ok_or_else(|| corrupt(format!("{what} declares more elements than a {len}-byte file can hold")))?;
        }
        w.u32(&what)?; // its type (candle names an unknown one)
        w.u64(&what)?; // its offset (checked against the file's length after candle's read)
    }
    reader.seek(SeekFrom::Start(0))?;
    Ok(())
}
