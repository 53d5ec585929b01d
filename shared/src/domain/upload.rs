//! Upload metadata: file names, content types and sizes.

use super::Invalid;
use super::invalid;

pub const MAX_FILE_NAME_BYTES: usize = 255;

/// A file name safe to put in an object key and a `Content-Disposition`: the last path
/// component only, no control characters, at most 255 bytes (the extension is kept when
/// a long name is cut).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileName(String);

impl FileName {
    pub fn parse(raw: &str) -> Result<Self, Invalid> {
        let last = raw.rsplit(['/', '\\']).next().unwrap_or_default();
        let cleaned: String = last.chars().filter(|c| !c.is_control()).collect();
        // No leading dots or spaces in any mix: `. .x` is `x`, not the hidden-file `.x`.
        let cleaned = cleaned
            .trim_start_matches(|c: char| c == '.' || c.is_whitespace())
            .trim_end();
        if cleaned.is_empty() {
            return Err(invalid("file_name", "must contain a file name"));
        }
        Ok(Self(truncate_keeping_extension(
            cleaned,
            MAX_FILE_NAME_BYTES,
        )))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

fn truncate_keeping_extension(name: &str, max: usize) -> String {
    if name.len() <= max {
        return name.to_owned();
    }
    let (stem, ext) = match name.rfind('.') {
        Some(dot) if name.len() - dot <= 16 => name.split_at(dot),
        _ => (name, ""),
    };
    let mut cut = max - ext.len();
    while !stem.is_char_boundary(cut) {
        cut -= 1;
    }
    format!("{}{}", &stem[..cut], ext)
}

/// A `type/subtype` media type made of RFC 9110 token characters, lower-cased.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ContentType(String);

impl ContentType {
    pub fn parse(raw: &str) -> Result<Self, Invalid> {
        let token = |s: &str| {
            !s.is_empty()
                && s.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
        };
        match raw.split_once('/') {
            Some((t, s)) if raw.len() <= 255 && token(t) && token(s) => {
                Ok(Self(raw.to_ascii_lowercase()))
            }
            _ => Err(invalid(
                "content_type",
                "must be a media type like `image/png`",
            )),
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn is_image(&self) -> bool {
        self.0.starts_with("image/")
    }

    /// The extension for an object key (`.png`), for well-known types only.
    pub fn extension(&self) -> &'static str {
        KNOWN_TYPES
            .iter()
            .find(|(t, _)| *t == self.0)
            .map_or("", |(_, ext)| ext)
    }
}

/// Types safe to serve from storage, with their extensions: images, audio, video browsers
/// play, PDF, plain text, office documents, zip, and `application/octet-stream` (what a
/// browser reports for a file it does not know, e.g. an `.apk`; served as an attachment).
/// HTML, SVG (scriptable on the storage origin) and executables are not among them.
const KNOWN_TYPES: &[(&str, &str)] = &[
    ("image/png", ".png"),
    ("image/jpeg", ".jpg"),
    ("image/gif", ".gif"),
    ("image/webp", ".webp"),
    ("image/avif", ".avif"),
    ("image/heic", ".heic"),
    ("application/pdf", ".pdf"),
    ("text/plain", ".txt"),
    ("text/csv", ".csv"),
    ("text/markdown", ".md"),
    ("application/rtf", ".rtf"),
    ("application/msword", ".doc"),
    (
        "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
        ".docx",
    ),
    ("application/vnd.ms-excel", ".xls"),
    (
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        ".xlsx",
    ),
    ("application/vnd.ms-powerpoint", ".ppt"),
    (
        "application/vnd.openxmlformats-officedocument.presentationml.presentation",
        ".pptx",
    ),
    ("application/vnd.oasis.opendocument.text", ".odt"),
    ("application/vnd.oasis.opendocument.spreadsheet", ".ods"),
    ("application/vnd.oasis.opendocument.presentation", ".odp"),
    ("application/zip", ".zip"),
    ("audio/webm", ".weba"),
    ("audio/ogg", ".ogg"),
    ("audio/mp4", ".m4a"),
    ("audio/x-m4a", ".m4a"),
    ("audio/mpeg", ".mp3"),
    ("audio/aac", ".aac"),
    ("audio/wav", ".wav"),
    ("audio/flac", ".flac"),
    ("video/mp4", ".mp4"),
    ("video/webm", ".webm"),
    ("application/octet-stream", ".bin"),
];

/// Extensions refused whatever the declared type (a browser reports an unknown file as
/// `application/octet-stream`): pages and SVG render and run script once opened, and these
/// run as programs on a click. An `.apk` or `.dmg` is a package, installed deliberately.
const REFUSED_EXTENSIONS: &[&str] = &[
    "html", "htm", "xhtml", "shtml", "svg", "svgz", "exe", "msi", "msix", "bat", "cmd", "com",
    "scr", "pif", "cpl", "ps1", "vbs", "vbe", "js", "jse", "wsf", "wsh", "hta", "jar", "lnk",
    "reg", "sh", "command", "app",
];

impl FileName {
    /// Whether its extension is one refused whatever the type ([`REFUSED_EXTENSIONS`]).
    pub fn is_refused(&self) -> bool {
        self.0.rsplit_once('.').is_some_and(|(_, ext)| {
            REFUSED_EXTENSIONS
                .iter()
                .any(|r| r.eq_ignore_ascii_case(ext.trim_end()))
        })
    }
}

/// Whether a file of this type is served `inline` (shown or played in the page): raster
/// images, audio, and the video types browsers play. Anything else, SVG included, is served
/// as an attachment, whatever the allow-list lets in.
pub fn served_inline(content_type: &str) -> bool {
    matches!(
        content_type,
        "image/png"
            | "image/jpeg"
            | "image/gif"
            | "image/webp"
            | "image/avif"
            | "image/heic"
            | "video/mp4"
            | "video/webm"
    ) || content_type.starts_with("audio/")
}

/// `UPLOAD_ALLOWED_TYPES`: the media types that may be uploaded. Entries are exact types
/// or `type/*`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AllowedTypes(Vec<String>);

impl Default for AllowedTypes {
    /// [`KNOWN_TYPES`], and any `audio/*` (voice notes come as webm/opus, ogg, m4a or mp3
    /// depending on the browser).
    fn default() -> Self {
        Self(
            KNOWN_TYPES
                .iter()
                .map(|(t, _)| (*t).to_owned())
                .chain(["audio/*".to_owned()])
                .collect(),
        )
    }
}

impl AllowedTypes {
    pub fn parse(raw: &str) -> Self {
        Self(
            raw.split(',')
                .map(|t| t.trim().to_ascii_lowercase())
                .filter(|t| !t.is_empty())
                .collect(),
        )
    }

    pub fn allows(&self, content_type: &ContentType) -> bool {
        self.0
            .iter()
            .any(|allowed| match allowed.strip_suffix("/*") {
                Some(family) => content_type.0.split('/').next() == Some(family),
                None => *allowed == content_type.0,
            })
    }
}

/// A declared upload size in bytes, at most the configured maximum (413 above it).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UploadSize(u64);

impl UploadSize {
    pub fn parse(size: i64, max: u64) -> Result<Self, Invalid> {
        let size = u64::try_from(size).map_err(|_| invalid("size", "must not be negative"))?;
        if size > max {
            return Err(Invalid::UploadTooLarge(format!(
                "The file is over the {max}-byte upload limit."
            )));
        }
        Ok(Self(size))
    }

    pub fn get(self) -> u64 {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_names_lose_their_path_and_control_characters() {
        assert_eq!(
            FileName::parse("../../etc/passwd").unwrap().as_str(),
            "passwd"
        );
        assert_eq!(
            FileName::parse("C:\\Users\\me\\cat.png").unwrap().as_str(),
            "cat.png"
        );
        assert_eq!(
            FileName::parse("a\u{0}b\nc.txt").unwrap().as_str(),
            "abc.txt"
        );
        assert_eq!(FileName::parse("..hidden").unwrap().as_str(), "hidden");
        assert_eq!(FileName::parse(" . .x").unwrap().as_str(), "x");
        for bad in ["", "dir/", "..", " \t "] {
            assert!(FileName::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn long_file_names_are_cut_to_255_bytes_keeping_the_extension() {
        let name = FileName::parse(&format!("{}.png", "é".repeat(200))).unwrap();
        assert!(name.as_str().len() <= 255);
        assert!(name.as_str().ends_with(".png"));
    }

    #[test]
    fn content_types_are_type_slash_subtype() {
        assert_eq!(
            ContentType::parse("Image/PNG").unwrap().as_str(),
            "image/png"
        );
        assert!(ContentType::parse("application/vnd.ms-excel").is_ok());
        for bad in [
            "png",
            "image/",
            "/png",
            "text/plain; charset=utf-8",
            "a/b/c",
            "im age/png",
        ] {
            assert!(ContentType::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_default_allow_list_refuses_html_svg_and_executables() {
        let allowed = AllowedTypes::default();
        for ok in [
            "image/png",
            "application/pdf",
            "text/plain",
            "application/zip",
            "application/vnd.ms-excel",
            "audio/webm",
            "audio/ogg",
            "audio/mp4",
            "audio/mpeg",
            "audio/opus",
            "video/mp4",
            "video/webm",
            "application/octet-stream",
        ] {
            assert!(allowed.allows(&ContentType::parse(ok).unwrap()), "{ok}");
        }
        for bad in [
            "text/html",
            "image/svg+xml",
            "application/x-msdownload",
            "application/javascript",
            "application/x-sh",
        ] {
            assert!(!allowed.allows(&ContentType::parse(bad).unwrap()), "{bad}");
        }
        let custom = AllowedTypes::parse("image/*, application/pdf");
        assert!(custom.allows(&ContentType::parse("image/tiff").unwrap()));
        assert!(!custom.allows(&ContentType::parse("text/plain").unwrap()));
    }

    #[test]
    fn pages_svg_and_executables_are_refused_by_name_whatever_the_type() {
        for bad in [
            "setup.exe",
            "page.HTML",
            "x.svg",
            "run.sh",
            "a.b.js",
            "tool.msi",
        ] {
            assert!(FileName::parse(bad).unwrap().is_refused(), "{bad}");
        }
        for ok in [
            "app.apk",
            "notes.txt",
            "voice.weba",
            "html",
            "clip.mp4",
            "archive.zip",
        ] {
            assert!(!FileName::parse(ok).unwrap().is_refused(), "{ok}");
        }
    }

    #[test]
    fn images_audio_and_video_are_served_inline_and_the_rest_as_attachments() {
        for inline in [
            "image/png",
            "image/jpeg",
            "audio/webm",
            "audio/mpeg",
            "video/mp4",
        ] {
            assert!(served_inline(inline), "{inline}");
        }
        for attachment in [
            "image/svg+xml",
            "text/html",
            "application/octet-stream",
            "video/x-msvideo",
            "application/pdf",
        ] {
            assert!(!served_inline(attachment), "{attachment}");
        }
    }

    #[test]
    fn sizes_over_the_limit_are_413() {
        assert!(UploadSize::parse(10, 10).is_ok());
        assert!(matches!(
            UploadSize::parse(11, 10),
            Err(Invalid::UploadTooLarge(_))
        ));
        assert!(matches!(UploadSize::parse(-1, 10), Err(Invalid::Field(_))));
    }
}
