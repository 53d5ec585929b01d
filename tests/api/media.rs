//! Attached images are processed after the send: sizes, thumbnails, placeholders and a
//! metadata-stripped copy, all read back through the S3 server that checks signatures.
//! The files are made here (and one fixture: a 48 KB PNG that decodes to 400 megapixels).

use std::io::Cursor;
use std::time::Duration;

use image::codecs::gif::GifEncoder;
use image::codecs::jpeg::JpegEncoder;
use image::codecs::png::PngEncoder;
use image::codecs::webp::WebPEncoder;
use image::{DynamicImage, Frame, GenericImageView, ImageFormat, RgbImage, RgbaImage};
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{ALICE, TestApp};
use crate::sse_client::RawStream;

pub fn photo(width: u32, height: u32) -> DynamicImage {
    DynamicImage::ImageRgb8(RgbImage::from_fn(width, height, |x, y| {
        image::Rgb([
            (x * 7 % 256) as u8,
            (y * 5 % 256) as u8,
            ((x + y) % 256) as u8,
        ])
    }))
}

pub fn encode(image: &DynamicImage, format: ImageFormat) -> Vec<u8> {
    let mut out = Vec::new();
    match format {
        ImageFormat::Jpeg => image
            .write_with_encoder(JpegEncoder::new_with_quality(&mut out, 90))
            .unwrap(),
        ImageFormat::Png => image.write_with_encoder(PngEncoder::new(&mut out)).unwrap(),
        ImageFormat::WebP => image
            .write_with_encoder(WebPEncoder::new_lossless(&mut out))
            .unwrap(),
        other => panic!("{other:?}"),
    }
    out
}

/// An EXIF APP1 segment: orientation 6 (turn 90° clockwise to show) and a GPS position,
/// 48°51'29.98" N.
fn exif_app1() -> Vec<u8> {
    let mut tiff = Vec::new();
    tiff.extend_from_slice(b"II*\0");
    tiff.extend_from_slice(&8u32.to_le_bytes());
    // IFD0: orientation, and the GPS IFD's offset.
    tiff.extend_from_slice(&2u16.to_le_bytes());
    tiff.extend_from_slice(&[0x12, 0x01, 3, 0, 1, 0, 0, 0, 6, 0, 0, 0]);
    tiff.extend_from_slice(&[0x25, 0x88, 4, 0, 1, 0, 0, 0, 38, 0, 0, 0]);
    tiff.extend_from_slice(&0u32.to_le_bytes());
    // GPS IFD at 38: latitude ref "N", latitude (three rationals at 68).
    tiff.extend_from_slice(&2u16.to_le_bytes());
    tiff.extend_from_slice(&[1, 0, 2, 0, 2, 0, 0, 0, b'N', 0, 0, 0]);
    tiff.extend_from_slice(&[2, 0, 5, 0, 3, 0, 0, 0, 68, 0, 0, 0]);
    tiff.extend_from_slice(&0u32.to_le_bytes());
    for (n, d) in [(48u32, 1u32), (51, 1), (2998, 100)] {
        tiff.extend_from_slice(&n.to_le_bytes());
        tiff.extend_from_slice(&d.to_le_bytes());
    }
    assert_eq!(tiff.len(), 92);
    let mut segment = vec![0xFF, 0xE1];
    segment.extend_from_slice(&((2 + 6 + tiff.len()) as u16).to_be_bytes());
    segment.extend_from_slice(b"Exif\0\0");
    segment.extend_from_slice(&tiff);
    segment
}

/// A JPEG of `width` × `height` stored pixels with [`exif_app1`] right after its SOI.
fn jpeg_with_gps(width: u32, height: u32) -> Vec<u8> {
    let plain = encode(&photo(width, height), ImageFormat::Jpeg);
    let mut jpeg = plain[..2].to_vec();
    jpeg.extend_from_slice(&exif_app1());
    jpeg.extend_from_slice(&plain[2..]);
    jpeg
}

/// A two-frame animated GIF with a comment extension.
fn animated_gif() -> Vec<u8> {
    let mut out = Vec::new();
    {
        let mut encoder = GifEncoder::new(&mut out);
        encoder
            .set_repeat(image::codecs::gif::Repeat::Infinite)
            .unwrap();
        let frames = [[255u8, 0, 0, 255], [0, 0, 255, 255]]
            .map(|color| Frame::new(RgbaImage::from_pixel(30, 20, image::Rgba(color))));
        encoder.encode_frames(frames).unwrap();
    }
    let trailer = out.pop();
    assert_eq!(trailer, Some(0x3B));
    out.extend_from_slice(b"\x21\xfe\x0dtaken at home\x00\x3b");
    out
}

/// Presigns, PUTs and attaches a file as Alice; returns the message the send answered.
pub async fn send_file(app: &TestApp, name: &str, content_type: &str, bytes: &[u8]) -> Value {
    let upload = app
        .presigned(
            ALICE,
            &json!({"room_id": "general", "file_name": name, "content_type": content_type, "size": bytes.len()}),
        )
        .await;
    assert!(app.put_upload(&upload, bytes).await.status().is_success());
    let sent = app
        .post_message(
            "general",
            &json!({"content": "", "file_ids": [upload["id"]]}),
        )
        .await;
    assert_eq!(sent.status(), StatusCode::CREATED);
    sent.json().await.unwrap()
}

/// The message's first file as listed, once it is no longer `processing`.
pub async fn processed_file(app: &TestApp, message: &Value) -> Value {
    for _ in 0..300 {
        let listed: Value = app.list_messages("general", "").await.json().await.unwrap();
        let found = listed["messages"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["id"] == message["id"])
            .expect("the message is listed")
            .clone();
        if found["files"][0]["processing"] == false {
            return found["files"][0].clone();
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("still processing after 15 s: {message}");
}

async fn get_bytes(app: &TestApp, url: &Value) -> (reqwest::header::HeaderMap, Vec<u8>) {
    let response = app.client.get(url.as_str().unwrap()).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK, "GET {url}");
    let headers = response.headers().clone();
    (headers, response.bytes().await.unwrap().to_vec())
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// Checks the thumbnail is a WebP of at most `max` px on the long side, and the placeholder
/// a `data:` URI; returns the thumbnail's size.
async fn check_thumbnail(app: &TestApp, file: &Value, max: u32) -> (u32, u32) {
    let (headers, bytes) = get_bytes(app, &file["thumbnail_url"]).await;
    assert_eq!(headers["content-type"], "image/webp");
    let thumbnail = image::load_from_memory_with_format(&bytes, ImageFormat::WebP).unwrap();
    assert!(thumbnail.width().max(thumbnail.height()) <= max);
    assert!(
        file["placeholder"]
            .as_str()
            .unwrap()
            .starts_with("data:image/webp;base64,"),
        "{file}"
    );
    thumbnail.dimensions()
}

#[tokio::test]
async fn a_jpeg_with_gps_exif_is_served_upright_without_it_and_subscribers_get_it_once_more() {
    // The stream must see the message before processing ends: the log sends a message
    // changed twice between two reads once, in its newest state, so with a 500 ms poll a
    // quick processing run would show only the processed message. The wake-up delivers the
    // post in milliseconds, a 50 ms poll backs it up.
    let app = TestApp::spawn_with(|c| {
        c.database.url_unpooled = Some(c.database.url.clone());
        c.stream.poll_interval = Duration::from_millis(50);
        c.stream.wakeup_poll_interval = Duration::from_millis(50);
    })
    .await;
    app.room("general").await;
    let mut stream = RawStream::open(&app, "general", "?after=0", None).await;
    assert!(
        stream
            .next(Duration::from_secs(10))
            .await
            .unwrap()
            .retry
            .is_some()
    );
    let original = jpeg_with_gps(600, 400);
    assert!(contains(&original, b"Exif\0\0") && contains(&original, &2998u32.to_le_bytes()));

    let sent = send_file(&app, "IMG_0001.jpg", "image/jpeg", &original).await;
    let file = &sent["files"][0];
    assert_eq!(file["processing"], true);
    assert_eq!(file["width"], Value::Null);
    assert_eq!(file["thumbnail_url"], Value::Null);

    // The stream shows the message, then once more when processing is done.
    let first = stream.next_event(Duration::from_secs(10)).await.unwrap();
    // A new message is the stream's default event: no `event:` line.
    assert_eq!(first.event.as_deref().unwrap_or("message"), "message");
    assert_eq!(first.json()["files"][0]["processing"], true);
    let updated = stream.next_event(Duration::from_secs(15)).await.unwrap();
    assert_eq!(updated.event.as_deref(), Some("message.updated"));
    let streamed = updated.json()["files"][0].clone();
    assert_eq!(streamed["processing"], false);
    assert!(updated.json()["event_id"].as_i64() > first.json()["event_id"].as_i64());

    let listed = processed_file(&app, &sent).await;
    // Orientation 6 applied: 600 × 400 stored is 400 × 600 shown.
    assert_eq!(
        (listed["width"].clone(), listed["height"].clone()),
        (json!(400), json!(600))
    );
    assert_eq!(listed["served"], "stripped");
    assert_eq!(listed["size"], original.len());
    let (headers, served) = get_bytes(&app, &listed["url"]).await;
    assert_eq!(headers["content-type"], "image/jpeg");
    assert_eq!(listed["served_size"], served.len());
    assert!(!contains(&served, b"Exif"), "the served copy has EXIF");
    assert!(
        !contains(&served, &2998u32.to_le_bytes()),
        "the GPS position is served"
    );
    let decoded = image::load_from_memory_with_format(&served, ImageFormat::Jpeg).unwrap();
    assert_eq!(decoded.dimensions(), (400, 600));
    assert_eq!(check_thumbnail(&app, &listed, 320).await, (213, 320));
    assert_eq!(streamed["width"], 400);

    // Nothing more: one event for the processing.
    let next = tokio::time::timeout(
        Duration::from_millis(1500),
        stream.next_event(Duration::from_secs(60)),
    )
    .await;
    assert!(next.is_err(), "another event: {next:?}");
}

#[tokio::test]
async fn a_png_an_animated_gif_and_a_webp_get_sizes_thumbnails_and_stripped_copies() {
    let app = TestApp::spawn().await;
    app.room("general").await;

    // A PNG with a text chunk (where XMP travels).
    let mut png = encode(&photo(500, 300), ImageFormat::Png);
    let text_chunk = {
        let data = b"XML:com.adobe.xmp\0<x:xmpmeta>secret</x:xmpmeta>";
        let mut chunk = (data.len() as u32).to_be_bytes().to_vec();
        chunk.extend_from_slice(b"tEXt");
        chunk.extend_from_slice(data);
        let crc = crc32(&chunk[4..]);
        chunk.extend_from_slice(&crc.to_be_bytes());
        chunk
    };
    png.splice(33..33, text_chunk);
    assert!(image::load_from_memory(&png).is_ok());
    let sent = send_file(&app, "chart.png", "image/png", &png).await;
    let file = processed_file(&app, &sent).await;
    assert_eq!(
        (file["width"].clone(), file["height"].clone()),
        (json!(500), json!(300))
    );
    assert_eq!(file["served"], "stripped");
    let (_, served) = get_bytes(&app, &file["url"]).await;
    assert!(!contains(&served, b"xmpmeta"));
    assert_eq!(
        image::load_from_memory_with_format(&served, ImageFormat::Png)
            .unwrap()
            .dimensions(),
        (500, 300)
    );
    assert_eq!(check_thumbnail(&app, &file, 320).await, (320, 192));

    let gif = animated_gif();
    let sent = send_file(&app, "wave.gif", "image/gif", &gif).await;
    let file = processed_file(&app, &sent).await;
    assert_eq!(
        (file["width"].clone(), file["height"].clone()),
        (json!(30), json!(20))
    );
    assert_eq!(file["served"], "stripped");
    let (_, served) = get_bytes(&app, &file["url"]).await;
    assert!(!contains(&served, b"taken at home"));
    // Still animated: both frames are served.
    let frames = image::AnimationDecoder::into_frames(
        image::codecs::gif::GifDecoder::new(Cursor::new(&served)).unwrap(),
    )
    .count();
    assert_eq!(frames, 2);
    assert_eq!(check_thumbnail(&app, &file, 320).await, (30, 20));

    let webp = encode(&photo(64, 48), ImageFormat::WebP);
    let sent = send_file(&app, "sticker.webp", "image/webp", &webp).await;
    let file = processed_file(&app, &sent).await;
    assert_eq!(
        (file["width"].clone(), file["height"].clone()),
        (json!(64), json!(48))
    );
    let (headers, served) = get_bytes(&app, &file["url"]).await;
    assert_eq!(headers["content-type"], "image/webp");
    assert!(image::load_from_memory_with_format(&served, ImageFormat::WebP).is_ok());
    check_thumbnail(&app, &file, 320).await;
}

#[tokio::test]
async fn an_image_over_image_max_px_is_served_resized_and_keeps_its_upload_size() {
    let app = TestApp::spawn_with(|c| {
        c.media.image_max_px = 400;
        c.media.thumbnail_max_px = 100;
    })
    .await;
    app.room("general").await;
    let original = jpeg_with_gps(1200, 800);
    let sent = send_file(&app, "big.jpg", "image/jpeg", &original).await;
    let file = processed_file(&app, &sent).await;
    assert_eq!(file["served"], "resized");
    assert_eq!(
        (file["width"].clone(), file["height"].clone()),
        (json!(267), json!(400))
    );
    assert_eq!(file["size"], original.len());
    let (_, served) = get_bytes(&app, &file["url"]).await;
    assert_eq!(file["served_size"], served.len());
    assert!(served.len() < original.len());
    assert_eq!(
        image::load_from_memory(&served).unwrap().dimensions(),
        (267, 400)
    );
    assert_eq!(check_thumbnail(&app, &file, 100).await, (67, 100));
}

/// Files processing refuses keep their original bytes and get no thumbnail; the function
/// goes on serving.
#[tokio::test]
async fn a_bomb_a_truncated_jpeg_and_a_png_declared_as_jpeg_keep_their_originals() {
    let app = TestApp::spawn().await;
    app.room("general").await;
    let bomb = std::fs::read("tests/api/fixtures/bomb-20000x20000.png").unwrap();
    assert!(bomb.len() < 1024 * 1024);
    let whole = jpeg_with_gps(300, 200);
    let truncated = whole[..whole.len() * 2 / 3].to_vec();
    let png = encode(&photo(40, 30), ImageFormat::Png);
    for (name, content_type, bytes) in [
        ("bomb.png", "image/png", &bomb),
        ("cut.jpg", "image/jpeg", &truncated),
        ("really-a-png.jpg", "image/jpeg", &png),
    ] {
        let started = std::time::Instant::now();
        let sent = send_file(&app, name, content_type, bytes).await;
        let file = processed_file(&app, &sent).await;
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "{name}: {:?}",
            started.elapsed()
        );
        assert_eq!(file["served"], "original", "{name}");
        assert_eq!(file["thumbnail_url"], Value::Null, "{name}");
        assert_eq!(file["placeholder"], Value::Null, "{name}");
        assert_eq!(file["width"], Value::Null, "{name}");
        assert_eq!(file["served_size"], bytes.len(), "{name}");
        let (headers, served) = get_bytes(&app, &file["url"]).await;
        assert_eq!(&served, bytes, "{name}");
        assert_eq!(headers["content-type"], content_type, "{name}");
    }
    assert!(app.server_alive());
    assert_eq!(app.health().await.0, StatusCode::OK);
}

/// PNG's CRC-32 (ISO-HDLC).
fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = 0xFFFF_FFFFu32;
    for &b in bytes {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}
