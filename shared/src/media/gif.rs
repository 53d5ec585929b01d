//! A GIF's blocks less its metadata: comment extensions and application extensions other
//! than the looping ones (XMP travels in an application extension). Animated GIFs are
//! served this way rather than re-encoded: re-quantising every frame is slow and lossy, and
//! a GIF carries no EXIF or GPS.

/// The GIF with its comment and non-looping application extensions removed, or `None` if
/// its blocks do not parse up to the trailer (truncated or not a GIF).
pub fn strip_metadata(bytes: &[u8]) -> Option<Vec<u8>> {
    if !(bytes.starts_with(b"GIF87a") || bytes.starts_with(b"GIF89a")) {
        return None;
    }
    let flags = *bytes.get(10)?;
    let mut i = 13 + color_table_len(flags);
    let mut out = bytes.get(..i)?.to_vec();
    loop {
        match *bytes.get(i)? {
            // Trailer.
            0x3B => {
                out.push(0x3B);
                return Some(out);
            }
            // Extension: label, then sub-blocks.
            0x21 => {
                let label = *bytes.get(i + 1)?;
                let end = skip_sub_blocks(bytes, i + 2)?;
                let keep = match label {
                    0xFE => false,
                    0xFF => {
                        let id = bytes.get(i + 3..i + 14)?;
                        id == b"NETSCAPE2.0" || id == b"ANIMEXTS1.0"
                    }
                    _ => true,
                };
                if keep {
                    out.extend_from_slice(&bytes[i..end]);
                }
                i = end;
            }
            // Image: descriptor, local colour table, LZW code size, then sub-blocks.
            0x2C => {
                let flags = *bytes.get(i + 9)?;
                let data = i + 10 + color_table_len(flags) + 1;
                let end = skip_sub_blocks(bytes, data)?;
                out.extend_from_slice(&bytes[i..end]);
                i = end;
            }
            _ => return None,
        }
    }
}

fn color_table_len(flags: u8) -> usize {
    if flags & 0x80 != 0 {
        3 << ((flags & 7) + 1)
    } else {
        0
    }
}

/// The index after the sub-blocks starting at `i` (after their zero-length terminator).
fn skip_sub_blocks(bytes: &[u8], mut i: usize) -> Option<usize> {
    loop {
        let n = usize::from(*bytes.get(i)?);
        i += 1 + n;
        if n == 0 {
            return Some(i);
        }
        if i > bytes.len() {
            return None;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A 1 × 1 GIF with a comment, an XMP application extension and a loop extension.
    fn gif() -> Vec<u8> {
        let mut g = b"GIF89a\x01\x00\x01\x00\x80\x00\x00\x00\x00\x00\xff\xff\xff".to_vec();
        g.extend_from_slice(b"\x21\xff\x0bNETSCAPE2.0\x03\x01\x00\x00\x00");
        g.extend_from_slice(b"\x21\xfe\x05hello\x00");
        g.extend_from_slice(b"\x21\xff\x0bXMP DataXMP\x04<x/>\x00");
        g.extend_from_slice(b"\x2c\x00\x00\x00\x00\x01\x00\x01\x00\x00\x02\x02\x44\x01\x00");
        g.push(0x3B);
        g
    }

    #[test]
    fn comments_and_xmp_go_and_the_loop_and_frames_stay() {
        let stripped = strip_metadata(&gif()).unwrap();
        let text = String::from_utf8_lossy(&stripped);
        assert!(text.contains("NETSCAPE2.0"));
        assert!(!text.contains("hello") && !text.contains("XMP"));
        assert!(image::load_from_memory(&stripped).is_ok());
    }

    #[test]
    fn a_truncated_gif_does_not_parse() {
        let whole = gif();
        for cut in [5, 20, whole.len() - 1] {
            assert!(strip_metadata(&whole[..cut]).is_none(), "{cut}");
        }
    }
}
