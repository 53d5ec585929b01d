//! One image, bounded: check its bytes are its declared type and complete, decode it under
//! a pixel and an allocation limit, and make what is served (re-encoded without metadata,
//! orientation applied, scaled to `IMAGE_MAX_PX`), a WebP thumbnail and a tiny placeholder.
//! No I/O; the caller bounds the time ([`super::process_message`]).

use std::io::Cursor;

use base64::Engine;
use image::codecs::jpeg::JpegEncoder;
use image::codecs::png::PngEncoder;
use image::codecs::webp::WebPEncoder;
use image::imageops::FilterType;
use image::{DynamicImage, ImageDecoder, ImageFormat, ImageReader, Limits};

use super::gif;

/// The image types processed. Others (HEIC and AVIF among them: there is no pure-Rust HEIC
/// decoder, and AVIF decoding needs dav1d, a C library) are served as uploaded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Jpeg,
    Png,
    Gif,
    Webp,
}

impl Kind {
    pub fn of(content_type: &str) -> Option<Self> {
        match content_type {
            "image/jpeg" => Some(Self::Jpeg),
            "image/png" => Some(Self::Png),
            "image/gif" => Some(Self::Gif),
            "image/webp" => Some(Self::Webp),
            _ => None,
        }
    }

    fn format(self) -> ImageFormat {
        match self {
            Self::Jpeg => ImageFormat::Jpeg,
            Self::Png => ImageFormat::Png,
            Self::Gif => ImageFormat::Gif,
            Self::Webp => ImageFormat::WebP,
        }
    }
}

/// Sizes to make and limits to decode under (`config::MediaConfig`).
#[derive(Clone, Copy, Debug)]
pub struct Bounds {
    pub max_pixels: u64,
    pub max_alloc: u64,
    pub thumbnail_max_px: u32,
    pub image_max_px: u32,
}

/// Which bytes a processed image serves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Served {
    /// Re-encoded at its own size (an animated GIF: its blocks less comments and metadata).
    Stripped,
    /// Re-encoded at `IMAGE_MAX_PX` on the long side.
    Resized,
}

impl Served {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Stripped => "stripped",
            Self::Resized => "resized",
        }
    }
}

#[derive(Debug)]
pub struct Processed {
    /// Of the served image, orientation applied.
    pub width: u32,
    pub height: u32,
    pub served: Served,
    pub served_bytes: Vec<u8>,
    /// Lossless WebP (image-webp encodes lossless only).
    pub thumbnail: Vec<u8>,
    /// A `data:image/webp;base64,…` URI of at most 16 px on the long side, to show blurred
    /// while the thumbnail loads.
    pub placeholder: String,
}

/// Why an image keeps its original bytes and gets no thumbnail.
#[derive(Debug, thiserror::Error)]
pub enum Refused {
    #[error("the bytes are {found}, not the declared {declared:?}")]
    NotDeclaredType { declared: Kind, found: String },
    #[error("{width} × {height} is over the {max}-pixel decoding limit")]
    TooManyPixels { width: u32, height: u32, max: u64 },
    #[error("the file is truncated")]
    Truncated,
    #[error("cannot decode: {0}")]
    Decode(#[source] image::ImageError),
    #[error("cannot encode: {0}")]
    Encode(#[source] image::ImageError),
}

/// Placeholder's long side.
const PLACEHOLDER_PX: u32 = 16;
/// JPEG quality of a re-encoded photo.
const JPEG_QUALITY: u8 = 85;

/// Processes one image. The pixel limit is checked on the header's dimensions before
/// anything is decoded; the decoder's allocations are capped by `bounds.max_alloc`.
pub fn process(bytes: &[u8], kind: Kind, bounds: &Bounds) -> Result<Processed, Refused> {
    match image::guess_format(bytes) {
        Ok(found) if found == kind.format() => {}
        found => {
            return Err(Refused::NotDeclaredType {
                declared: kind,
                found: found.map_or_else(|_| "unknown".into(), |f| format!("{f:?}")),
            });
        }
    }
    if kind == Kind::Jpeg && !jpeg_is_complete(bytes) {
        return Err(Refused::Truncated);
    }
    // An animated GIF is served as its own blocks, less metadata; checked first, so a
    // truncated one is refused before decoding.
    let gif_served = match kind {
        Kind::Gif => Some(gif::strip_metadata(bytes).ok_or(Refused::Truncated)?),
        _ => None,
    };

    let mut limits = Limits::default();
    limits.max_alloc = Some(bounds.max_alloc);
    let mut reader = ImageReader::with_format(Cursor::new(bytes), kind.format());
    reader.limits(limits);
    let mut decoder = reader.into_decoder().map_err(Refused::Decode)?;
    let (width, height) = decoder.dimensions();
    if u64::from(width) * u64::from(height) > bounds.max_pixels {
        return Err(Refused::TooManyPixels {
            width,
            height,
            max: bounds.max_pixels,
        });
    }
    let orientation = decoder
        .orientation()
        .unwrap_or(image::metadata::Orientation::NoTransforms);
    // A GIF decodes its first frame.
    let decoded = DynamicImage::from_decoder(decoder).map_err(decode_error)?;

    // Scaled before it is turned, so a large photo is never rotated at full size: the
    // bound is a square, so the order does not change the result.
    let long_side = width.max(height);
    let (mut image, served) = match gif_served {
        None if long_side > bounds.image_max_px => {
            let resized = decoded.resize(
                bounds.image_max_px,
                bounds.image_max_px,
                FilterType::Triangle,
            );
            // The full-size buffer goes before the encoders allocate.
            drop(decoded);
            (resized, Served::Resized)
        }
        _ => (decoded, Served::Stripped),
    };
    image.apply_orientation(orientation);

    let served_bytes = match gif_served {
        Some(stripped) => stripped,
        None => encode_as(&image, kind)?,
    };
    let thumbnail_image = if image.width().max(image.height()) > bounds.thumbnail_max_px {
        image.thumbnail(bounds.thumbnail_max_px, bounds.thumbnail_max_px)
    } else {
        image.clone()
    };
    let thumbnail = encode_webp(&thumbnail_image)?;
    let tiny = thumbnail_image.thumbnail(PLACEHOLDER_PX, PLACEHOLDER_PX);
    let placeholder = format!(
        "data:image/webp;base64,{}",
        base64::engine::general_purpose::STANDARD.encode(encode_webp(&tiny)?)
    );
    Ok(Processed {
        width: image.width(),
        height: image.height(),
        served,
        served_bytes,
        thumbnail,
        placeholder,
    })
}

/// A decoder that ran out of data reports an I/O error: the file is truncated.
fn decode_error(err: image::ImageError) -> Refused {
    match &err {
        image::ImageError::IoError(io) if io.kind() == std::io::ErrorKind::UnexpectedEof => {
            Refused::Truncated
        }
        _ => Refused::Decode(err),
    }
}

/// Re-encodes in the declared format, which writes no metadata (no EXIF, XMP, text chunks).
fn encode_as(image: &DynamicImage, kind: Kind) -> Result<Vec<u8>, Refused> {
    let mut out = Vec::new();
    let written = match kind {
        Kind::Jpeg => {
            let encoder = JpegEncoder::new_with_quality(&mut out, JPEG_QUALITY);
            match image {
                DynamicImage::ImageLuma8(_) | DynamicImage::ImageRgb8(_) => {
                    image.write_with_encoder(encoder)
                }
                other => DynamicImage::ImageRgb8(other.to_rgb8()).write_with_encoder(encoder),
            }
        }
        Kind::Png => image.write_with_encoder(PngEncoder::new(&mut out)),
        Kind::Webp => return encode_webp(image),
        Kind::Gif => unreachable!("a GIF is served as its stripped blocks"),
    };
    written.map_err(Refused::Encode)?;
    Ok(out)
}

/// Lossless WebP of 8-bit RGB or RGBA (what image-webp encodes).
fn encode_webp(image: &DynamicImage) -> Result<Vec<u8>, Refused> {
    let mut out = Vec::new();
    let encoder = WebPEncoder::new_lossless(&mut out);
    let written = if image.color().has_alpha() {
        DynamicImage::ImageRgba8(image.to_rgba8()).write_with_encoder(encoder)
    } else {
        DynamicImage::ImageRgb8(image.to_rgb8()).write_with_encoder(encoder)
    };
    written.map_err(Refused::Encode)?;
    Ok(out)
}

/// Whether a JPEG has its end-of-image marker: the segments are walked from SOI to the
/// first start-of-scan, and an `FF D9` must follow it (inside entropy-coded data an `FF` is
/// always followed by `00` or a restart marker, so it cannot occur by chance; an EXIF
/// thumbnail's own markers sit inside an APP1 segment and are skipped). zune-jpeg decodes a
/// truncated scan without an error, filling the rest in grey.
pub fn jpeg_is_complete(bytes: &[u8]) -> bool {
    if !bytes.starts_with(&[0xFF, 0xD8]) {
        return false;
    }
    let mut i = 2;
    loop {
        while bytes.get(i) == Some(&0xFF) && bytes.get(i + 1) == Some(&0xFF) {
            i += 1;
        }
        let (Some(&0xFF), Some(&marker), Some(&hi), Some(&lo)) = (
            bytes.get(i),
            bytes.get(i + 1),
            bytes.get(i + 2),
            bytes.get(i + 3),
        ) else {
            return false;
        };
        let end = i + 2 + usize::from(u16::from_be_bytes([hi, lo]));
        if marker == 0xDA {
            return bytes
                .get(end..)
                .is_some_and(|scan| scan.windows(2).any(|w| w == [0xFF, 0xD9]));
        }
        i = end;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bounds() -> Bounds {
        Bounds {
            max_pixels: 50_000_000,
            max_alloc: 512 << 20,
            thumbnail_max_px: 32,
            image_max_px: 64,
        }
    }

    fn jpeg(width: u32, height: u32) -> Vec<u8> {
        let image = DynamicImage::ImageRgb8(image::RgbImage::from_fn(width, height, |x, y| {
            image::Rgb([(x % 256) as u8, (y % 256) as u8, 128])
        }));
        let mut out = Vec::new();
        image
            .write_with_encoder(JpegEncoder::new_with_quality(&mut out, 90))
            .unwrap();
        out
    }

    #[test]
    fn a_large_jpeg_is_served_resized_with_a_thumbnail_and_a_placeholder() {
        let processed = process(&jpeg(200, 100), Kind::Jpeg, &bounds()).unwrap();
        assert_eq!((processed.width, processed.height), (64, 32));
        assert_eq!(processed.served, Served::Resized);
        let thumbnail = image::load_from_memory(&processed.thumbnail).unwrap();
        assert_eq!((thumbnail.width(), thumbnail.height()), (32, 16));
        assert!(processed.placeholder.starts_with("data:image/webp;base64,"));
    }

    #[test]
    fn a_truncated_jpeg_is_refused() {
        let whole = jpeg(40, 40);
        assert!(jpeg_is_complete(&whole));
        let cut = &whole[..whole.len() / 2];
        assert!(!jpeg_is_complete(cut));
        assert!(matches!(
            process(cut, Kind::Jpeg, &bounds()),
            Err(Refused::Truncated)
        ));
    }

    #[test]
    fn bytes_of_another_type_are_refused() {
        assert!(matches!(
            process(&jpeg(10, 10), Kind::Png, &bounds()),
            Err(Refused::NotDeclaredType { .. })
        ));
        assert!(matches!(
            process(b"hello", Kind::Jpeg, &bounds()),
            Err(Refused::NotDeclaredType { .. })
        ));
    }

    #[test]
    fn an_image_over_the_pixel_limit_is_not_decoded() {
        let tight = Bounds {
            max_pixels: 99,
            ..bounds()
        };
        assert!(matches!(
            process(&jpeg(10, 10), Kind::Jpeg, &tight),
            Err(Refused::TooManyPixels { .. })
        ));
    }
}
