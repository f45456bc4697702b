//! whisper.cpp's ggml model file: writer (from a CTranslate2 Whisper model), header reader,
//! the Slaney mel filterbank and the GPT-2 byte-level BPE byte↔unicode mapping.
//!
//! File layout (little-endian `i32`s), as read by `whisper_model_load`:
//! magic `0x67676d6c`; hparams `n_vocab, n_audio_ctx, n_audio_state, n_audio_head,
//! n_audio_layer, n_text_ctx, n_text_state, n_text_head, n_text_layer, n_mels, ftype`;
//! mel filters `n_mel, n_fft` + `n_mel*n_fft` f32; vocabulary count + (`len`, raw bytes)…
//! (special `<|…|>` tokens are not stored; whisper.cpp synthesises them from `n_vocab`);
//! then tensors until EOF: `n_dims, name_len, ttype` (0 f32, 1 f16), dims innermost first,
//! name, data.

use std::io::{self, Read, Write};

use super::ct2::{Ct2Model, Tensor};

/// `ggml` in ASCII, as the first little-endian `u32` of the file.
pub const GGML_MAGIC: u32 = 0x6767_6d6c;
/// Sample rate, FFT size and mel count of Whisper's front end (n_mels = 128 for large-v3).
pub const SAMPLE_RATE: u32 = 16_000;
pub const N_FFT: usize = 400;

/// Whisper hyper-parameters as stored in a ggml header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Hparams {
    pub n_vocab: i32,
    pub n_audio_ctx: i32,
    pub n_audio_state: i32,
    pub n_audio_head: i32,
    pub n_audio_layer: i32,
    pub n_text_ctx: i32,
    pub n_text_state: i32,
    pub n_text_head: i32,
    pub n_text_layer: i32,
    pub n_mels: i32,
    /// 0 f32, 1 f16, others quantized (plus 1000 × quantization version).
    pub ftype: i32,
}

impl Hparams {
    /// OpenAI size name from the encoder depth (`tiny`, `base`, ...), `.en` for English-only.
    pub fn model_type(&self) -> String {
        let size = match self.n_audio_layer {
            4 => "tiny",
            6 => "base",
            12 => "small",
            24 => "medium",
            32 => "large",
            _ => "unknown",
        };
        // English-only vocabularies have 51864 entries; multilingual ones 51865 or more.
        let en = if self.n_vocab == 51864 { ".en" } else { "" };
        format!("{size}{en}")
    }

    /// Weight type name (`f32`, `f16`, `q5_0`, ...).
    pub fn ftype_name(&self) -> String {
        match self.ftype % 1000 {
            0 => "f32",
            1 => "f16",
            2 => "q4_0",
            3 => "q4_1",
            7 => "q8_0",
            8 => "q5_0",
            9 => "q5_1",
            other => return format!("ftype {other}"),
        }
        .to_string()
    }

    fn to_bytes(self) -> Vec<u8> {
        [
            self.n_vocab,
            self.n_audio_ctx,
            self.n_audio_state,
            self.n_audio_head,
            self.n_audio_layer,
            self.n_text_ctx,
            self.n_text_state,
            self.n_text_head,
            self.n_text_layer,
            self.n_mels,
            self.ftype,
        ]
        .iter()
        .flat_map(|v| v.to_le_bytes())
        .collect()
    }
}

/// Why a CTranslate2 Whisper model could not be converted.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConvertError {
    #[error("quantized int8 CT2 models are not supported; use float16")]
    Quantized,
    #[error("missing variable {0}; not a complete CTranslate2 Whisper model")]
    Missing(String),
    #[error("variable {name} has shape {got:?}, expected {expected}")]
    Shape {
        name: String,
        got: Vec<usize>,
        expected: String,
    },
    #[error("variable {name} is {dtype}, expected a float type")]
    NotFloat { name: String, dtype: String },
    #[error("vocabulary has {got} tokens but the model has {expected} token embeddings")]
    VocabSize { got: usize, expected: usize },
    #[error("vocabulary token {index} ({token:?}) is not byte-level BPE text")]
    BadToken { index: usize, token: String },
    #[error("writing the ggml file failed: {0}")]
    Io(#[from] io::Error),
}

/// Why a file is not a readable ggml Whisper model.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HeaderError {
    #[error("not a ggml Whisper model (bad magic {0:#010x})")]
    BadMagic(u32),
    #[error("truncated ggml header")]
    Truncated,
    #[error("implausible ggml header ({0})")]
    Implausible(String),
    #[error("cannot read: {0}")]
    Io(io::Error),
}

/// Read and sanity-check the magic and hparams at the start of a ggml Whisper file.
pub fn read_header<R: Read>(mut r: R) -> Result<Hparams, HeaderError> {
    let mut buf = [0u8; 48];
    r.read_exact(&mut buf).map_err(|e| match e.kind() {
        io::ErrorKind::UnexpectedEof => HeaderError::Truncated,
        _ => HeaderError::Io(e),
    })?;
    let v: Vec<i32> = buf
        .chunks_exact(4)
        .map(|c| i32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    let magic = v[0] as u32;
    if magic != GGML_MAGIC {
        return Err(HeaderError::BadMagic(magic));
    }
    let h = Hparams {
        n_vocab: v[1],
        n_audio_ctx: v[2],
        n_audio_state: v[3],
        n_audio_head: v[4],
        n_audio_layer: v[5],
        n_text_ctx: v[6],
        n_text_state: v[7],
        n_text_head: v[8],
        n_text_layer: v[9],
        n_mels: v[10],
        ftype: v[11],
    };
    let ok = (50_000..=60_000).contains(&h.n_vocab)
        && h.n_audio_state > 0
        && h.n_audio_head > 0
        && h.n_audio_state % h.n_audio_head == 0
        && (1..=64).contains(&h.n_audio_layer)
        && (1..=64).contains(&h.n_text_layer)
        && h.n_text_state == h.n_audio_state
        && h.n_text_head > 0
        && (1..=4096).contains(&h.n_audio_ctx)
        && (1..=4096).contains(&h.n_text_ctx)
        && (h.n_mels == 80 || h.n_mels == 128)
        && h.ftype >= 0;
    if !ok {
        return Err(HeaderError::Implausible(format!("{h:?}")));
    }
    Ok(h)
}

// ---------------------------------------------------------------------------------------------
// Byte-level BPE

/// GPT-2's `bytes_to_unicode`: the printable character that stands for each byte in
/// byte-level BPE vocabularies. Printable Latin-1 bytes map to themselves; the other 68 bytes
/// map, in order, to U+0100, U+0101, ...
pub fn bytes_to_unicode() -> [char; 256] {
    let mut table = ['\0'; 256];
    let mut n = 0u32;
    for b in 0..=255u8 {
        let printable = matches!(b, b'!'..=b'~' | 0xA1..=0xAC | 0xAE..=0xFF);
        table[usize::from(b)] = if printable {
            char::from(b)
        } else {
            n += 1;
            char::from_u32(255 + n).expect("U+0100..U+0143 are valid")
        };
    }
    table
}

/// Inverse of [`bytes_to_unicode`], indexed by code point (all mapped characters are below
/// U+0144); `None` for characters outside the mapping.
pub fn unicode_to_bytes() -> Vec<Option<u8>> {
    let mut inv = vec![None; 0x144];
    for (b, c) in bytes_to_unicode().iter().enumerate() {
        inv[*c as usize] = Some(b as u8);
    }
    inv
}

/// The raw bytes of one unicode-mapped vocabulary entry (`inverse` from
/// [`unicode_to_bytes`]), or `None` if it contains a character outside the mapping.
pub fn token_bytes(token: &str, inverse: &[Option<u8>]) -> Option<Vec<u8>> {
    token
        .chars()
        .map(|c| inverse.get(c as usize).copied().flatten())
        .collect()
}

/// Whether a vocabulary entry is a Whisper special token such as `<|endoftext|>`.
pub fn is_special_token(token: &str) -> bool {
    token.len() > 4 && token.starts_with("<|") && token.ends_with("|>")
}

/// The byte strings to store in a ggml file from a CTranslate2 vocabulary (one
/// unicode-mapped token per entry, in id order): every token up to the first special token.
/// Tokens after it must all be special (they are not stored).
pub fn ggml_vocab(tokens: &[String]) -> Result<Vec<Vec<u8>>, ConvertError> {
    let inverse = unicode_to_bytes();
    let n_regular = tokens
        .iter()
        .position(|t| is_special_token(t))
        .unwrap_or(tokens.len());
    if let Some((index, token)) = tokens
        .iter()
        .enumerate()
        .skip(n_regular)
        .find(|(_, t)| !is_special_token(t))
    {
        return Err(ConvertError::BadToken {
            index,
            token: token.clone(),
        });
    }
    tokens[..n_regular]
        .iter()
        .enumerate()
        .map(|(index, t)| {
            token_bytes(t, &inverse).ok_or_else(|| ConvertError::BadToken {
                index,
                token: t.clone(),
            })
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Mel filterbank

fn hz_to_mel_slaney(hz: f64) -> f64 {
    const F_SP: f64 = 200.0 / 3.0;
    const MIN_LOG_HZ: f64 = 1000.0;
    let min_log_mel = MIN_LOG_HZ / F_SP;
    let logstep = 6.4f64.ln() / 27.0;
    if hz >= MIN_LOG_HZ {
        min_log_mel + (hz / MIN_LOG_HZ).ln() / logstep
    } else {
        hz / F_SP
    }
}

fn mel_to_hz_slaney(mel: f64) -> f64 {
    const F_SP: f64 = 200.0 / 3.0;
    const MIN_LOG_HZ: f64 = 1000.0;
    let min_log_mel = MIN_LOG_HZ / F_SP;
    let logstep = 6.4f64.ln() / 27.0;
    if mel >= min_log_mel {
        MIN_LOG_HZ * (logstep * (mel - min_log_mel)).exp()
    } else {
        F_SP * mel
    }
}

/// Slaney-style, area-normalised triangular mel filterbank, row-major `n_mels × (n_fft/2+1)`,
/// equal to librosa's `filters.mel(sr=sr, n_fft=n_fft, n_mels=n_mels)` with its defaults
/// (`fmin=0`, `fmax=sr/2`, `htk=False`, `norm='slaney'`), which is what Whisper's
/// `mel_filters.npz` holds. Computed in f64 and rounded to f32 like librosa.
pub fn mel_filterbank(sr: u32, n_fft: usize, n_mels: usize) -> Vec<f32> {
    let n_bins = n_fft / 2 + 1;
    let sr = f64::from(sr);
    let fft_freqs: Vec<f64> = (0..n_bins)
        .map(|i| i as f64 * (sr / n_fft as f64))
        .collect();
    let (mel_min, mel_max) = (hz_to_mel_slaney(0.0), hz_to_mel_slaney(sr / 2.0));
    let mel_f: Vec<f64> = (0..n_mels + 2)
        .map(|i| {
            let m = mel_min + (mel_max - mel_min) * i as f64 / (n_mels + 1) as f64;
            mel_to_hz_slaney(m)
        })
        .collect();
    let mut out = Vec::with_capacity(n_mels * n_bins);
    for i in 0..n_mels {
        let fdiff_lo = mel_f[i + 1] - mel_f[i];
        let fdiff_hi = mel_f[i + 2] - mel_f[i + 1];
        let enorm = 2.0 / (mel_f[i + 2] - mel_f[i]);
        for &f in &fft_freqs {
            let lower = -(mel_f[i] - f) / fdiff_lo;
            let upper = (mel_f[i + 2] - f) / fdiff_hi;
            out.push((0f64.max(lower.min(upper)) * enorm) as f32);
        }
    }
    out
}

// ---------------------------------------------------------------------------------------------
// Conversion

fn get<'a>(m: &'a Ct2Model, name: &str) -> Result<&'a Tensor, ConvertError> {
    let t = m
        .get(name)
        .ok_or_else(|| ConvertError::Missing(name.to_string()))?;
    if !t.dtype.is_float() {
        return Err(ConvertError::NotFloat {
            name: name.to_string(),
            dtype: t.dtype.to_string(),
        });
    }
    Ok(t)
}

fn expect_shape(name: &str, t: &Tensor, expected: &[usize]) -> Result<(), ConvertError> {
    if t.dims != expected {
        return Err(ConvertError::Shape {
            name: name.to_string(),
            got: t.dims.clone(),
            expected: format!("{expected:?}"),
        });
    }
    Ok(())
}

fn count_layers(m: &Ct2Model, prefix: &str) -> usize {
    (0..)
        .take_while(|i| {
            let p = format!("{prefix}/layer_{i}/");
            m.variables.keys().any(|k| k.starts_with(&p))
        })
        .count()
}

/// Derive whisper.cpp hyper-parameters from the tensor shapes (and the stored head counts).
pub fn hparams_from_ct2(m: &Ct2Model) -> Result<Hparams, ConvertError> {
    if m.is_quantized() {
        return Err(ConvertError::Quantized);
    }
    let emb = get(m, "decoder/embeddings/weight")?;
    let enc_pe = get(m, "encoder/position_encodings/encodings")?;
    let dec_pe = get(m, "decoder/position_encodings/encodings")?;
    let conv1 = get(m, "encoder/conv1/weight")?;
    let shape_err = |name: &str, t: &Tensor, expected: &str| ConvertError::Shape {
        name: name.to_string(),
        got: t.dims.clone(),
        expected: expected.to_string(),
    };
    let [n_vocab, d] = emb.dims[..] else {
        return Err(shape_err(
            "decoder/embeddings/weight",
            emb,
            "[n_vocab, d_model]",
        ));
    };
    let [n_audio_ctx, _] = enc_pe.dims[..] else {
        return Err(shape_err(
            "encoder/position_encodings/encodings",
            enc_pe,
            "[n_ctx, d_model]",
        ));
    };
    let [n_text_ctx, _] = dec_pe.dims[..] else {
        return Err(shape_err(
            "decoder/position_encodings/encodings",
            dec_pe,
            "[n_ctx, d_model]",
        ));
    };
    let [_, n_mels, 3] = conv1.dims[..] else {
        return Err(shape_err(
            "encoder/conv1/weight",
            conv1,
            "[d_model, n_mels, 3]",
        ));
    };
    // Whisper uses 64-dimensional heads; CT2 also stores the head count as a scalar.
    let heads = |prefix: &str| {
        m.get(&format!("{prefix}/num_heads"))
            .and_then(Tensor::scalar_i64)
            .map(|h| h as usize)
            .filter(|&h| h > 0 && d % h == 0)
            .unwrap_or(d / 64)
    };
    let n_audio_layer = count_layers(m, "encoder");
    let n_text_layer = count_layers(m, "decoder");
    if n_audio_layer == 0 {
        return Err(ConvertError::Missing("encoder/layer_0".into()));
    }
    if n_text_layer == 0 {
        return Err(ConvertError::Missing("decoder/layer_0".into()));
    }
    let i = |v: usize| v as i32;
    Ok(Hparams {
        n_vocab: i(n_vocab),
        n_audio_ctx: i(n_audio_ctx),
        n_audio_state: i(d),
        n_audio_head: i(heads("encoder")),
        n_audio_layer: i(n_audio_layer),
        n_text_ctx: i(n_text_ctx),
        n_text_state: i(d),
        n_text_head: i(heads("decoder")),
        n_text_layer: i(n_text_layer),
        n_mels: i(n_mels),
        ftype: 1,
    })
}

/// Storage of the large weight matrices (linear layers and the token embedding) in a written
/// model; everything else stays as whisper.cpp expects it (f32 biases, norms and positional
/// embeddings, f16 convolutions).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum WeightType {
    #[default]
    F16,
    /// ggml's 8-bit blocks (32 weights, one f16 scale): about half the f16 size.
    Q8_0,
    /// ggml's 5-bit blocks (32 weights, f16 scale and minimum): about a third.
    Q5_1,
}

impl WeightType {
    /// The header's `ftype`: ggml's file type plus 1000 × the quantisation format version,
    /// as whisper.cpp's `quantize` writes it.
    fn ftype(self) -> i32 {
        use whisper_rs::whisper_rs_sys::{GGML_QNT_VERSION, GGML_QNT_VERSION_FACTOR};
        const QNT_VERSION_FACTOR: i32 = (GGML_QNT_VERSION_FACTOR * GGML_QNT_VERSION) as i32;
        match self {
            Self::F16 => 1,
            Self::Q8_0 => QNT_VERSION_FACTOR + 7,
            Self::Q5_1 => QNT_VERSION_FACTOR + 9,
        }
    }

    fn out(self) -> Out {
        match self {
            Self::F16 => Out::F16,
            Self::Q8_0 => Out::Quant(whisper_rs::whisper_rs_sys::ggml_type_GGML_TYPE_Q8_0),
            Self::Q5_1 => Out::Quant(whisper_rs::whisper_rs_sys::ggml_type_GGML_TYPE_Q5_1),
        }
    }
}

/// Element storage in the output file.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Out {
    F32,
    F16,
    /// A ggml block-quantised type, rows quantised by ggml's own reference quantiser.
    Quant(whisper_rs::whisper_rs_sys::ggml_type),
}

struct Writer<W: Write> {
    w: W,
    tensors: usize,
    weights: Out,
}

/// `rows × n_per_row` f32 values in ggml's block format `ty`, by ggml's reference quantiser
/// (`ggml_quantize_chunk`), so the blocks are exactly what whisper.cpp's `quantize` writes.
fn quantize_rows(
    ty: whisper_rs::whisper_rs_sys::ggml_type,
    src: &[f32],
    n_per_row: usize,
) -> Vec<u8> {
    use whisper_rs::whisper_rs_sys as sys;
    assert!(n_per_row > 0 && src.len() % n_per_row == 0);
    let rows = src.len() / n_per_row;
    // SAFETY: ggml_row_size only reads its type table.
    let row_bytes = unsafe { sys::ggml_row_size(ty, n_per_row as i64) };
    let mut dst = vec![0u8; row_bytes * rows];
    // SAFETY: `src` holds rows × n_per_row floats and `dst` rows × row_bytes bytes, which is
    // what ggml_quantize_chunk reads and writes for `start` 0; q8_0 and q5_1 need no
    // importance matrix (null) and no ggml_quantize_init state beyond what it sets itself.
    let written = unsafe {
        sys::ggml_quantize_chunk(
            ty,
            src.as_ptr(),
            dst.as_mut_ptr().cast(),
            0,
            rows as i64,
            n_per_row as i64,
            std::ptr::null(),
        )
    };
    assert_eq!(
        written,
        dst.len(),
        "ggml_quantize_chunk wrote an unexpected size"
    );
    dst
}

impl<W: Write> Writer<W> {
    /// Write one tensor. `shape` is outermost first; `rows` selects a row range of the first
    /// dimension of `src` (for splitting fused projections).
    fn tensor(
        &mut self,
        name: &str,
        src: &Tensor,
        rows: std::ops::Range<usize>,
        shape: &[usize],
        out: Out,
    ) -> Result<(), ConvertError> {
        let row_len: usize = src.dims[1..].iter().product();
        let numel: usize = shape.iter().product();
        debug_assert_eq!(numel, rows.len() * row_len, "{name}");
        let (a, b) = (rows.start * row_len, rows.end * row_len);
        self.w.write_all(&(shape.len() as i32).to_le_bytes())?;
        self.w.write_all(&(name.len() as i32).to_le_bytes())?;
        let ttype: i32 = match out {
            Out::F32 => 0,
            Out::F16 => 1,
            Out::Quant(t) => t as i32,
        };
        self.w.write_all(&ttype.to_le_bytes())?;
        for &d in shape.iter().rev() {
            self.w.write_all(&(d as i32).to_le_bytes())?;
        }
        self.w.write_all(name.as_bytes())?;
        match (out, src.dtype) {
            (Out::F16, super::ct2::DType::F16) => {
                self.w.write_all(&src.data[a * 2..b * 2])?;
            }
            (Out::F32, super::ct2::DType::F32) => {
                self.w.write_all(&src.data[a * 4..b * 4])?;
            }
            (Out::F16, _) => {
                let bits = src.to_f16_bits().expect("float checked");
                let bytes: Vec<u8> = bits[a..b].iter().flat_map(|v| v.to_le_bytes()).collect();
                self.w.write_all(&bytes)?;
            }
            (Out::F32, _) => {
                let vals = src.to_f32().expect("float checked");
                let bytes: Vec<u8> = vals[a..b].iter().flat_map(|v| v.to_le_bytes()).collect();
                self.w.write_all(&bytes)?;
            }
            (Out::Quant(t), _) => {
                let vals = src.to_f32().expect("float checked");
                let n_per_row = *shape.last().expect("a 2-D weight");
                self.w
                    .write_all(&quantize_rows(t, &vals[a..b], n_per_row))?;
            }
        }
        self.tensors += 1;
        Ok(())
    }

    /// A whole CT2 variable, checked against `shape`.
    fn whole(
        &mut self,
        m: &Ct2Model,
        ct2: &str,
        ggml: &str,
        shape: &[usize],
        out: Out,
    ) -> Result<(), ConvertError> {
        let t = get(m, ct2)?;
        let n: usize = shape.iter().product();
        if t.numel() != n || t.dims.first().copied().unwrap_or(1) != shape[0] {
            return Err(ConvertError::Shape {
                name: ct2.to_string(),
                got: t.dims.clone(),
                expected: format!("{shape:?}"),
            });
        }
        let rows = t.dims.first().copied().unwrap_or(1);
        self.tensor(ggml, t, 0..rows, shape, out)
    }

    /// `layer_norm/gamma|beta` → `.weight|.bias` (f32).
    fn norm(&mut self, m: &Ct2Model, ct2: &str, ggml: &str, d: usize) -> Result<(), ConvertError> {
        self.whole(
            m,
            &format!("{ct2}/gamma"),
            &format!("{ggml}.weight"),
            &[d],
            Out::F32,
        )?;
        self.whole(
            m,
            &format!("{ct2}/beta"),
            &format!("{ggml}.bias"),
            &[d],
            Out::F32,
        )
    }

    /// A linear layer: f16 weight `[o, i]`, f32 bias `[o]`.
    fn linear(
        &mut self,
        m: &Ct2Model,
        ct2: &str,
        ggml: &str,
        o: usize,
        i: usize,
    ) -> Result<(), ConvertError> {
        self.whole(
            m,
            &format!("{ct2}/weight"),
            &format!("{ggml}.weight"),
            &[o, i],
            self.weights,
        )?;
        self.whole(
            m,
            &format!("{ct2}/bias"),
            &format!("{ggml}.bias"),
            &[o],
            Out::F32,
        )
    }

    /// Split a fused projection (rows stacked `[part0; part1; ...]`, each `d` rows) into
    /// separate ggml tensors. Parts named `key` get no bias (Whisper's key projection has none).
    fn fused(
        &mut self,
        m: &Ct2Model,
        ct2: &str,
        ggml_parts: &[&str],
        d: usize,
    ) -> Result<(), ConvertError> {
        let wname = format!("{ct2}/weight");
        let bname = format!("{ct2}/bias");
        let w = get(m, &wname)?;
        let b = get(m, &bname)?;
        let n = ggml_parts.len();
        expect_shape(&wname, w, &[n * d, d])?;
        expect_shape(&bname, b, &[n * d])?;
        for (k, part) in ggml_parts.iter().enumerate() {
            let rows = k * d..(k + 1) * d;
            self.tensor(
                &format!("{part}.weight"),
                w,
                rows.clone(),
                &[d, d],
                self.weights,
            )?;
            if !part.ends_with(".key") {
                self.tensor(&format!("{part}.bias"), b, rows, &[d], Out::F32)?;
            }
        }
        Ok(())
    }
}

/// Write a complete ggml Whisper model (weight matrices as `weights`; f16 convolutions; f32
/// biases, norms, conv biases and positional embeddings, as whisper.cpp expects) to `w`.
///
/// `vocab` holds the raw byte strings of the regular tokens (see [`ggml_vocab`]).
/// Returns the hyper-parameters written and the number of tensors.
pub fn write_ggml<W: Write>(
    m: &Ct2Model,
    vocab: &[Vec<u8>],
    weights: WeightType,
    w: W,
) -> Result<(Hparams, usize), ConvertError> {
    let mut h = hparams_from_ct2(m)?;
    h.ftype = weights.ftype();
    let n_vocab = h.n_vocab as usize;
    if vocab.len() > n_vocab {
        return Err(ConvertError::VocabSize {
            got: vocab.len(),
            expected: n_vocab,
        });
    }
    let d = h.n_audio_state as usize;
    let n_mels = h.n_mels as usize;
    let mut out = Writer {
        w,
        tensors: 0,
        weights: weights.out(),
    };

    out.w.write_all(&GGML_MAGIC.to_le_bytes())?;
    out.w.write_all(&h.to_bytes())?;

    let filters = mel_filterbank(SAMPLE_RATE, N_FFT, n_mels);
    out.w.write_all(&(n_mels as i32).to_le_bytes())?;
    out.w.write_all(&((N_FFT / 2 + 1) as i32).to_le_bytes())?;
    let fbytes: Vec<u8> = filters.iter().flat_map(|v| v.to_le_bytes()).collect();
    out.w.write_all(&fbytes)?;

    out.w.write_all(&(vocab.len() as i32).to_le_bytes())?;
    for tok in vocab {
        out.w.write_all(&(tok.len() as u32).to_le_bytes())?;
        out.w.write_all(tok)?;
    }

    // Encoder.
    let (actx, tctx) = (h.n_audio_ctx as usize, h.n_text_ctx as usize);
    out.whole(
        m,
        "encoder/position_encodings/encodings",
        "encoder.positional_embedding",
        &[actx, d],
        Out::F32,
    )?;
    out.whole(
        m,
        "encoder/conv1/weight",
        "encoder.conv1.weight",
        &[d, n_mels, 3],
        Out::F16,
    )?;
    out.whole(
        m,
        "encoder/conv1/bias",
        "encoder.conv1.bias",
        &[d, 1],
        Out::F32,
    )?;
    out.whole(
        m,
        "encoder/conv2/weight",
        "encoder.conv2.weight",
        &[d, d, 3],
        Out::F16,
    )?;
    out.whole(
        m,
        "encoder/conv2/bias",
        "encoder.conv2.bias",
        &[d, 1],
        Out::F32,
    )?;
    out.norm(m, "encoder/layer_norm", "encoder.ln_post", d)?;
    for l in 0..h.n_audio_layer as usize {
        let c = format!("encoder/layer_{l}");
        let g = format!("encoder.blocks.{l}");
        out.norm(
            m,
            &format!("{c}/self_attention/layer_norm"),
            &format!("{g}.attn_ln"),
            d,
        )?;
        out.fused(
            m,
            &format!("{c}/self_attention/linear_0"),
            &[
                &format!("{g}.attn.query"),
                &format!("{g}.attn.key"),
                &format!("{g}.attn.value"),
            ],
            d,
        )?;
        out.linear(
            m,
            &format!("{c}/self_attention/linear_1"),
            &format!("{g}.attn.out"),
            d,
            d,
        )?;
        out.norm(m, &format!("{c}/ffn/layer_norm"), &format!("{g}.mlp_ln"), d)?;
        out.linear(
            m,
            &format!("{c}/ffn/linear_0"),
            &format!("{g}.mlp.0"),
            4 * d,
            d,
        )?;
        out.linear(
            m,
            &format!("{c}/ffn/linear_1"),
            &format!("{g}.mlp.2"),
            d,
            4 * d,
        )?;
    }

    // Decoder.
    out.whole(
        m,
        "decoder/position_encodings/encodings",
        "decoder.positional_embedding",
        &[tctx, d],
        Out::F32,
    )?;
    out.whole(
        m,
        "decoder/embeddings/weight",
        "decoder.token_embedding.weight",
        &[n_vocab, d],
        out.weights,
    )?;
    out.norm(m, "decoder/layer_norm", "decoder.ln", d)?;
    for l in 0..h.n_text_layer as usize {
        let c = format!("decoder/layer_{l}");
        let g = format!("decoder.blocks.{l}");
        out.norm(
            m,
            &format!("{c}/self_attention/layer_norm"),
            &format!("{g}.attn_ln"),
            d,
        )?;
        out.fused(
            m,
            &format!("{c}/self_attention/linear_0"),
            &[
                &format!("{g}.attn.query"),
                &format!("{g}.attn.key"),
                &format!("{g}.attn.value"),
            ],
            d,
        )?;
        out.linear(
            m,
            &format!("{c}/self_attention/linear_1"),
            &format!("{g}.attn.out"),
            d,
            d,
        )?;
        out.norm(
            m,
            &format!("{c}/attention/layer_norm"),
            &format!("{g}.cross_attn_ln"),
            d,
        )?;
        out.linear(
            m,
            &format!("{c}/attention/linear_0"),
            &format!("{g}.cross_attn.query"),
            d,
            d,
        )?;
        out.fused(
            m,
            &format!("{c}/attention/linear_1"),
            &[
                &format!("{g}.cross_attn.key"),
                &format!("{g}.cross_attn.value"),
            ],
            d,
        )?;
        out.linear(
            m,
            &format!("{c}/attention/linear_2"),
            &format!("{g}.cross_attn.out"),
            d,
            d,
        )?;
        out.norm(m, &format!("{c}/ffn/layer_norm"), &format!("{g}.mlp_ln"), d)?;
        out.linear(
            m,
            &format!("{c}/ffn/linear_0"),
            &format!("{g}.mlp.0"),
            4 * d,
            d,
        )?;
        out.linear(
            m,
            &format!("{c}/ffn/linear_1"),
            &format!("{g}.mlp.2"),
            d,
            4 * d,
        )?;
    }
    out.w.flush()?;
    Ok((h, out.tensors))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// ggml's q8_0 block: an f16 scale `d` = max|x| / 127, then 32 × round(x / d); q5_1 as
    /// its layout says. The blocks decode back to the weights within half a step.
    #[test]
    fn q8_0_blocks_decode_back_within_half_a_step() {
        use whisper_rs::whisper_rs_sys as sys;
        let x: Vec<f32> = (0..64)
            .map(|i| ((i * 37 % 64) as f32 - 31.5) / 40.0)
            .collect();
        let q = quantize_rows(sys::ggml_type_GGML_TYPE_Q8_0, &x, 64);
        assert_eq!(q.len(), 2 * 34);
        for (b, block) in q.chunks_exact(34).enumerate() {
            let d = half::f16::from_le_bytes([block[0], block[1]]).to_f32();
            let xs = &x[b * 32..(b + 1) * 32];
            let amax = xs.iter().fold(0f32, |m, v| m.max(v.abs()));
            assert!(
                (d - amax / 127.0).abs() < 1e-3 * d,
                "scale {d} vs {amax}/127"
            );
            for (j, &v) in xs.iter().enumerate() {
                let back = f32::from(block[2 + j] as i8) * d;
                // Half a step, plus the scale's own f16 rounding (2^-11) times up to 127.
                let tol = d * 0.5 + v.abs() * 1e-3;
                assert!((back - v).abs() <= tol, "{v} came back {back}");
            }
        }
        // q5_1: f16 d, f16 min, 4 bytes of fifth bits, 16 bytes of nibbles per 32 weights.
        let q = quantize_rows(sys::ggml_type_GGML_TYPE_Q5_1, &x, 64);
        assert_eq!(q.len(), 2 * 24);
        let block = &q[..24];
        let d = half::f16::from_le_bytes([block[0], block[1]]).to_f32();
        let m = half::f16::from_le_bytes([block[2], block[3]]).to_f32();
        let qh = u32::from_le_bytes([block[4], block[5], block[6], block[7]]);
        for j in 0..16 {
            let lo = u32::from(block[8 + j] & 0x0f) | ((qh >> j) & 1) << 4;
            let hi = u32::from(block[8 + j] >> 4) | ((qh >> (j + 16)) & 1) << 4;
            for (k, q5) in [(j, lo), (j + 16, hi)] {
                let back = q5 as f32 * d + m;
                assert!(
                    (back - x[k]).abs() <= d * 0.5 + 1e-3,
                    "{} came back {back}",
                    x[k]
                );
            }
        }
    }

    #[test]
    fn byte_mapping_matches_gpt2() {
        let t = bytes_to_unicode();
        assert_eq!(t[usize::from(b'a')], 'a');
        assert_eq!(t[usize::from(b' ')], '\u{120}'); // 'Ġ'
        assert_eq!(t[usize::from(b'\n')], '\u{10a}'); // 'Ċ'
        assert_eq!(t[0], '\u{100}');
        assert_eq!(t[0xAD], '\u{143}'); // the last unprintable byte
        assert_eq!(t[0xE9], '\u{e9}'); // 'é' stands for itself
        let inv = unicode_to_bytes();
        for b in 0..=255u8 {
            assert_eq!(inv[t[usize::from(b)] as usize], Some(b));
        }
        assert_eq!(token_bytes("\u{120}the", &inv).unwrap(), b" the");
        // "ĠÃ©" is " é" in UTF-8 bytes (0x20 0xC3 0xA9).
        assert_eq!(
            token_bytes("\u{120}\u{c3}\u{a9}", &inv).unwrap(),
            vec![0x20, 0xC3, 0xA9]
        );
        assert_eq!(token_bytes("\u{4e00}", &inv), None);
    }

    #[test]
    fn vocab_drops_special_tokens() {
        let toks: Vec<String> = ["!", "\u{120}hi", "<|endoftext|>", "<|0.00|>"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let v = ggml_vocab(&toks).unwrap();
        assert_eq!(v, vec![b"!".to_vec(), b" hi".to_vec()]);
        let bad: Vec<String> = ["a", "<|x|>", "b"].iter().map(|s| s.to_string()).collect();
        assert!(matches!(
            ggml_vocab(&bad),
            Err(ConvertError::BadToken { index: 2, .. })
        ));
        // "<|>" alone is an ordinary token, not special.
        assert!(!is_special_token("<|>"));
    }

    #[test]
    fn mel_filterbank_matches_librosa() {
        // Reference values from a NumPy transcription of librosa.filters.mel
        // (sr=16000, n_fft=400, n_mels=80, htk=False, norm="slaney"), cast to f32.
        let w = mel_filterbank(16_000, 400, 80);
        assert_eq!(w.len(), 80 * 201);
        let at = |i: usize, j: usize| w[i * 201 + j];
        let cases = [
            (0, 1, 0.024_862_594_902_515_41),
            (1, 2, 0.022_871_771_827_340_126),
            (26, 26, 0.003_318_606_177_344_918_3),
            (55, 75, 0.003_870_812_011_882_662_8),
            (68, 125, 0.003_910_962_957_888_842),
            (79, 190, 0.002_232_054_946_944_117_5),
            (79, 199, 0.000_448_759_034_043_173_2),
            (10, 12, 0.0),
            (79, 200, 0.0),
        ];
        for (i, j, want) in cases {
            let got = f64::from(at(i, j));
            assert!(
                (got - want).abs() <= 1e-7 * want.max(1e-3),
                "[{i},{j}] {got} vs {want}"
            );
        }
        assert_eq!(w.iter().filter(|&&x| x > 0.0).count(), 391);
        let sum: f64 = w.iter().map(|&x| f64::from(x)).sum();
        assert!((sum - 1.999_024_105_625_721_9).abs() < 1e-6, "{sum}");
        let row = |i: usize| {
            w[i * 201..(i + 1) * 201]
                .iter()
                .filter(|&&x| x > 0.0)
                .count()
        };
        assert_eq!((row(0), row(40), row(79)), (1, 3, 14));
    }

    #[test]
    fn header_round_trip_and_rejects() {
        let h = Hparams {
            n_vocab: 51864,
            n_audio_ctx: 1500,
            n_audio_state: 384,
            n_audio_head: 6,
            n_audio_layer: 4,
            n_text_ctx: 448,
            n_text_state: 384,
            n_text_head: 6,
            n_text_layer: 4,
            n_mels: 80,
            ftype: 1,
        };
        let mut b = GGML_MAGIC.to_le_bytes().to_vec();
        b.extend(h.to_bytes());
        assert_eq!(read_header(&b[..]).unwrap(), h);
        assert_eq!(h.model_type(), "tiny.en");
        assert_eq!(h.ftype_name(), "f16");
        assert!(matches!(read_header(&b[..20]), Err(HeaderError::Truncated)));
        b[0] = b'X';
        assert!(matches!(read_header(&b[..]), Err(HeaderError::BadMagic(_))));
    }
}
