//! Reader for CTranslate2 `model.bin` files (the format faster-whisper ships).
//!
//! Layout (all little-endian): `u32` binary version, string spec name, `u32` spec revision,
//! `u32` variable count, then per variable: string name, `u8` rank, `u32` × rank dims,
//! `u8` dtype (0 f32, 1 i8, 2 i16, 3 i32, 4 f16, 5 bf16), `u32` byte count, raw data;
//! then `u32` alias count and (alias, target) string pairs. Strings are a `u16` length that
//! includes a trailing NUL, followed by the bytes.
//!
//! This module is pure: it parses bytes that the caller has read. Only Whisper models
//! (`WhisperSpec`) are accepted, since the only consumer is the ggml converter.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Binary format versions this reader understands (the dtype byte appeared in version 5).
const SUPPORTED_VERSIONS: std::ops::RangeInclusive<u32> = 5..=6;

/// Element type of a CTranslate2 variable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DType {
    F32,
    I8,
    I16,
    I32,
    F16,
    BF16,
}

impl DType {
    fn from_code(code: u8) -> Option<Self> {
        Some(match code {
            0 => Self::F32,
            1 => Self::I8,
            2 => Self::I16,
            3 => Self::I32,
            4 => Self::F16,
            5 => Self::BF16,
            _ => return None,
        })
    }

    /// Size of one element in bytes.
    pub fn size(self) -> usize {
        match self {
            Self::I8 => 1,
            Self::I16 | Self::F16 | Self::BF16 => 2,
            Self::F32 | Self::I32 => 4,
        }
    }

    /// Whether this is a floating-point type.
    pub fn is_float(self) -> bool {
        matches!(self, Self::F32 | Self::F16 | Self::BF16)
    }
}

impl std::fmt::Display for DType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::F32 => "float32",
            Self::I8 => "int8",
            Self::I16 => "int16",
            Self::I32 => "int32",
            Self::F16 => "float16",
            Self::BF16 => "bfloat16",
        })
    }
}

/// One named variable: shape (outermost dimension first, as in PyTorch/NumPy), element type
/// and raw little-endian data.
#[derive(Debug, Clone, PartialEq)]
pub struct Tensor {
    pub dims: Vec<usize>,
    pub dtype: DType,
    pub data: Vec<u8>,
}

impl Tensor {
    /// Number of elements (1 for a scalar).
    pub fn numel(&self) -> usize {
        self.dims.iter().product()
    }

    /// Elements converted to `f32`; `None` for integer types.
    pub fn to_f32(&self) -> Option<Vec<f32>> {
        let d = &self.data;
        Some(match self.dtype {
            DType::F32 => d
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect(),
            DType::F16 => d
                .chunks_exact(2)
                .map(|c| half::f16::from_le_bytes([c[0], c[1]]).to_f32())
                .collect(),
            DType::BF16 => d
                .chunks_exact(2)
                .map(|c| half::bf16::from_le_bytes([c[0], c[1]]).to_f32())
                .collect(),
            _ => return None,
        })
    }

    /// Elements as IEEE half-precision bit patterns (converting f32/bf16 with rounding);
    /// `None` for integer types.
    pub fn to_f16_bits(&self) -> Option<Vec<u16>> {
        match self.dtype {
            DType::F16 => Some(
                self.data
                    .chunks_exact(2)
                    .map(|c| u16::from_le_bytes([c[0], c[1]]))
                    .collect(),
            ),
            _ => Some(
                self.to_f32()?
                    .into_iter()
                    .map(|x| half::f16::from_f32(x).to_bits())
                    .collect(),
            ),
        }
    }

    /// A scalar integer or boolean value (the spec stores flags such as `num_heads` this way).
    pub fn scalar_i64(&self) -> Option<i64> {
        if self.numel() != 1 {
            return None;
        }
        let d = &self.data;
        Some(match self.dtype {
            DType::I8 => i64::from(d[0] as i8),
            DType::I16 => i64::from(i16::from_le_bytes([d[0], d[1]])),
            DType::I32 => i64::from(i32::from_le_bytes([d[0], d[1], d[2], d[3]])),
            _ => return None,
        })
    }
}

/// A parsed CTranslate2 model.
#[derive(Debug, Clone, PartialEq)]
pub struct Ct2Model {
    /// Spec name, e.g. `WhisperSpec`.
    pub spec: String,
    /// Binary format version (5 or 6).
    pub version: u32,
    /// Spec revision.
    pub revision: u32,
    /// Variables by name, in name order.
    pub variables: BTreeMap<String, Tensor>,
    /// Alias → target variable name (e.g. `decoder/projection/weight` → `decoder/embeddings/weight`).
    pub aliases: BTreeMap<String, String>,
}

/// Why a `model.bin` could not be read. Every message is one line naming the file.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Ct2Error {
    #[error("{}: cannot read: {source}", file.display())]
    Io {
        file: PathBuf,
        source: std::io::Error,
    },
    #[error("{}: not a CTranslate2 model.bin (binary version {version}, expected 5 or 6)", file.display())]
    BadVersion { file: PathBuf, version: u32 },
    #[error("{}: spec {spec} is not a Whisper model", file.display())]
    NotWhisper { file: PathBuf, spec: String },
    #[error("{}: truncated or corrupt header", file.display())]
    TruncatedHeader { file: PathBuf },
    #[error("{}: truncated at variable {index} of {count}", file.display())]
    Truncated {
        file: PathBuf,
        index: usize,
        count: usize,
    },
    #[error("{}: truncated in the alias table", file.display())]
    TruncatedAliases { file: PathBuf },
    #[error("{}: variable {name} has unknown dtype {code}", file.display())]
    UnknownDtype {
        file: PathBuf,
        name: String,
        code: u8,
    },
    #[error("{}: variable {name}: {problem}", file.display())]
    BadVariable {
        file: PathBuf,
        name: String,
        problem: String,
    },
}

/// Byte cursor; every read returns `None` past the end.
struct Cursor<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let end = self.pos.checked_add(n)?;
        let s = self.buf.get(self.pos..end)?;
        self.pos = end;
        Some(s)
    }
    fn u8(&mut self) -> Option<u8> {
        Some(self.take(1)?[0])
    }
    fn u16(&mut self) -> Option<u16> {
        let b = self.take(2)?;
        Some(u16::from_le_bytes([b[0], b[1]]))
    }
    fn u32(&mut self) -> Option<u32> {
        let b = self.take(4)?;
        Some(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }
    /// u16 length (including the trailing NUL) + bytes.
    fn string(&mut self) -> Option<String> {
        let n = usize::from(self.u16()?);
        let b = self.take(n)?;
        let b = b.strip_suffix(&[0]).unwrap_or(b);
        Some(String::from_utf8_lossy(b).into_owned())
    }
}

impl Ct2Model {
    /// Read and parse `model.bin` from disk.
    pub fn read(path: &Path) -> Result<Self, Ct2Error> {
        let bytes = std::fs::read(path).map_err(|source| Ct2Error::Io {
            file: path.to_path_buf(),
            source,
        })?;
        Self::parse(&bytes, path)
    }

    /// Parse a `model.bin` held in memory; `file` only labels error messages.
    pub fn parse(bytes: &[u8], file: &Path) -> Result<Self, Ct2Error> {
        let f = || file.to_path_buf();
        let mut c = Cursor { buf: bytes, pos: 0 };
        let version = c
            .u32()
            .ok_or_else(|| Ct2Error::TruncatedHeader { file: f() })?;
        if !SUPPORTED_VERSIONS.contains(&version) {
            return Err(Ct2Error::BadVersion { file: f(), version });
        }
        let spec = c
            .string()
            .ok_or_else(|| Ct2Error::TruncatedHeader { file: f() })?;
        if spec != "WhisperSpec" {
            return Err(Ct2Error::NotWhisper { file: f(), spec });
        }
        let revision = c
            .u32()
            .ok_or_else(|| Ct2Error::TruncatedHeader { file: f() })?;
        let count = c
            .u32()
            .ok_or_else(|| Ct2Error::TruncatedHeader { file: f() })? as usize;

        let mut variables = BTreeMap::new();
        for index in 0..count {
            let truncated = || Ct2Error::Truncated {
                file: f(),
                index,
                count,
            };
            let name = c.string().ok_or_else(truncated)?;
            let rank = c.u8().ok_or_else(truncated)?;
            let mut dims = Vec::with_capacity(usize::from(rank));
            for _ in 0..rank {
                dims.push(c.u32().ok_or_else(truncated)? as usize);
            }
            let code = c.u8().ok_or_else(truncated)?;
            let dtype = DType::from_code(code).ok_or_else(|| Ct2Error::UnknownDtype {
                file: f(),
                name: name.clone(),
                code,
            })?;
            let nbytes = c.u32().ok_or_else(truncated)? as usize;
            let data = c.take(nbytes).ok_or_else(truncated)?.to_vec();
            let numel = dims
                .iter()
                .try_fold(1usize, |a, &d| a.checked_mul(d))
                .unwrap_or(usize::MAX);
            if numel.checked_mul(dtype.size()) != Some(nbytes) {
                return Err(Ct2Error::BadVariable {
                    file: f(),
                    name,
                    problem: format!(
                        "{nbytes} bytes do not match shape {dims:?} of {dtype} elements"
                    ),
                });
            }
            variables.insert(name, Tensor { dims, dtype, data });
        }

        let mut aliases = BTreeMap::new();
        // Files written before aliases existed simply end here.
        if c.pos < bytes.len() {
            let bad = || Ct2Error::TruncatedAliases { file: f() };
            let n = c.u32().ok_or_else(bad)?;
            for _ in 0..n {
                let alias = c.string().ok_or_else(bad)?;
                let target = c.string().ok_or_else(bad)?;
                aliases.insert(alias, target);
            }
        }

        Ok(Self {
            spec,
            version,
            revision,
            variables,
            aliases,
        })
    }

    /// A variable by name, following aliases.
    pub fn get(&self, name: &str) -> Option<&Tensor> {
        self.variables.get(name).or_else(|| {
            self.aliases
                .get(name)
                .and_then(|target| self.variables.get(target))
        })
    }

    /// Whether weights are stored quantized (int8/int16 weights with `*_scale` companions).
    pub fn is_quantized(&self) -> bool {
        self.variables.iter().any(|(name, t)| {
            name.ends_with("weight_scale") || (name.ends_with("/weight") && !t.dtype.is_float())
        })
    }
}

/// Serialize a model in the same format (used by tests to build small fixtures).
pub fn write(model: &Ct2Model) -> Vec<u8> {
    fn string(out: &mut Vec<u8>, s: &str) {
        out.extend_from_slice(&((s.len() + 1) as u16).to_le_bytes());
        out.extend_from_slice(s.as_bytes());
        out.push(0);
    }
    let mut out = Vec::new();
    out.extend_from_slice(&model.version.to_le_bytes());
    string(&mut out, &model.spec);
    out.extend_from_slice(&model.revision.to_le_bytes());
    out.extend_from_slice(&(model.variables.len() as u32).to_le_bytes());
    for (name, t) in &model.variables {
        string(&mut out, name);
        out.push(t.dims.len() as u8);
        for &d in &t.dims {
            out.extend_from_slice(&(d as u32).to_le_bytes());
        }
        out.push(match t.dtype {
            DType::F32 => 0,
            DType::I8 => 1,
            DType::I16 => 2,
            DType::I32 => 3,
            DType::F16 => 4,
            DType::BF16 => 5,
        });
        out.extend_from_slice(&(t.data.len() as u32).to_le_bytes());
        out.extend_from_slice(&t.data);
    }
    out.extend_from_slice(&(model.aliases.len() as u32).to_le_bytes());
    for (a, t) in &model.aliases {
        string(&mut out, a);
        string(&mut out, t);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f16_tensor(dims: &[usize], values: &[f32]) -> Tensor {
        Tensor {
            dims: dims.to_vec(),
            dtype: DType::F16,
            data: values
                .iter()
                .flat_map(|&v| half::f16::from_f32(v).to_le_bytes())
                .collect(),
        }
    }

    fn sample(spec: &str) -> Ct2Model {
        let mut variables = BTreeMap::new();
        variables.insert(
            "decoder/embeddings/weight".to_string(),
            f16_tensor(&[2, 3], &[1.0, -2.0, 0.5, 0.0, 3.0, -0.25]),
        );
        variables.insert(
            "decoder/num_heads".to_string(),
            Tensor {
                dims: vec![],
                dtype: DType::I16,
                data: 6i16.to_le_bytes().to_vec(),
            },
        );
        variables.insert(
            "encoder/conv1/bias".to_string(),
            Tensor {
                dims: vec![2],
                dtype: DType::BF16,
                data: [1.5f32, -1.0]
                    .iter()
                    .flat_map(|&v| half::bf16::from_f32(v).to_le_bytes())
                    .collect(),
            },
        );
        let mut aliases = BTreeMap::new();
        aliases.insert(
            "decoder/projection/weight".to_string(),
            "decoder/embeddings/weight".to_string(),
        );
        Ct2Model {
            spec: spec.to_string(),
            version: 6,
            revision: 3,
            variables,
            aliases,
        }
    }

    #[test]
    fn round_trip_and_aliases() {
        let m = sample("WhisperSpec");
        let bytes = write(&m);
        let back = Ct2Model::parse(&bytes, Path::new("m.bin")).unwrap();
        assert_eq!(back, m);
        let proj = back.get("decoder/projection/weight").unwrap();
        assert_eq!(proj.dims, vec![2, 3]);
        assert_eq!(
            proj.to_f32().unwrap(),
            vec![1.0, -2.0, 0.5, 0.0, 3.0, -0.25]
        );
        assert_eq!(back.get("decoder/num_heads").unwrap().scalar_i64(), Some(6));
        assert_eq!(
            back.get("encoder/conv1/bias").unwrap().to_f32().unwrap(),
            vec![1.5, -1.0]
        );
        assert!(!back.is_quantized());
    }

    #[test]
    fn rejects_other_specs() {
        let bytes = write(&sample("TransformerSpec"));
        let e = Ct2Model::parse(&bytes, Path::new("x.bin")).unwrap_err();
        assert_eq!(
            e.to_string(),
            "x.bin: spec TransformerSpec is not a Whisper model"
        );
    }

    #[test]
    fn rejects_garbage_and_truncation() {
        let e = Ct2Model::parse(b"GGUF\x03\x00\x00\x00", Path::new("g.bin")).unwrap_err();
        assert!(matches!(e, Ct2Error::BadVersion { .. }), "{e}");
        assert!(e
            .to_string()
            .starts_with("g.bin: not a CTranslate2 model.bin"));

        let e = Ct2Model::parse(&[6, 0], Path::new("t.bin")).unwrap_err();
        assert!(matches!(e, Ct2Error::TruncatedHeader { .. }), "{e}");

        let bytes = write(&sample("WhisperSpec"));
        // Cut inside the first variable's data (after header and its name).
        let e = Ct2Model::parse(&bytes[..60], Path::new("t.bin")).unwrap_err();
        assert_eq!(e.to_string(), "t.bin: truncated at variable 0 of 3");
        // Cut inside the last variable.
        let cut = bytes.len() - 4 - 2 * (26 + 2) - 3;
        let e = Ct2Model::parse(&bytes[..cut], Path::new("t.bin")).unwrap_err();
        assert_eq!(e.to_string(), "t.bin: truncated at variable 2 of 3");
        // Cut in the alias table.
        let e = Ct2Model::parse(&bytes[..bytes.len() - 5], Path::new("t.bin")).unwrap_err();
        assert!(matches!(e, Ct2Error::TruncatedAliases { .. }), "{e}");
    }

    #[test]
    fn rejects_unknown_dtype_and_size_mismatch() {
        let mut m = sample("WhisperSpec");
        let bytes = write(&m);
        // The first variable is decoder/embeddings/weight: patch its dtype byte.
        let name = b"decoder/embeddings/weight\0";
        let at = bytes.windows(name.len()).position(|w| w == name).unwrap() + name.len();
        let dtype_at = at + 1 + 2 * 4;
        let mut bad = bytes.clone();
        bad[dtype_at] = 9;
        let e = Ct2Model::parse(&bad, Path::new("d.bin")).unwrap_err();
        assert_eq!(
            e.to_string(),
            "d.bin: variable decoder/embeddings/weight has unknown dtype 9"
        );

        m.variables.get_mut("encoder/conv1/bias").unwrap().dims = vec![3];
        let e = Ct2Model::parse(&write(&m), Path::new("d.bin")).unwrap_err();
        assert!(matches!(e, Ct2Error::BadVariable { .. }), "{e}");
    }

    #[test]
    fn detects_int8() {
        let mut m = sample("WhisperSpec");
        m.variables.insert(
            "encoder/layer_0/ffn/linear_0/weight".into(),
            Tensor {
                dims: vec![2],
                dtype: DType::I8,
                data: vec![1, 2],
            },
        );
        assert!(m.is_quantized());
    }
}
