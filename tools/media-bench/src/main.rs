//! `media-bench sizes`: for photos of 1, 12 and 48 megapixels (JPEG, quality 90, made here),
//! the time and peak RSS (`VmHWM`) of processing one with the defaults (`IMAGE_MAX_PX`
//! 2048, `THUMBNAIL_MAX_PX` 320), each in a fresh child process so peaks do not mix.
//!
//! `media-bench streams --url URL --server-pid PID [--streams 1000]`: opens that many
//! streams on a dev server (one user each), then sends a 12-megapixel photo and samples
//! the server's `VmRSS` every 20 ms until the file is processed.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use futures_util::StreamExt;
use image::codecs::jpeg::JpegEncoder;
use image::{DynamicImage, RgbImage};
use serde_json::{Value, json};
use shared::media::image::{Bounds, Kind, process};

const SIZES: [(u32, u32, &str); 3] = [
    (1152, 864, "1 MP (1152 × 864)"),
    (4000, 3000, "12 MP (4000 × 3000)"),
    (8000, 6000, "48 MP (8000 × 6000)"),
];

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    match args.get(1).map(String::as_str) {
        Some("sizes") => sizes(),
        Some("one") => one(Path::new(&args[2])),
        Some("streams") => streams(&args[2..]).await,
        _ => bail!("usage: media-bench sizes | streams --url URL --server-pid PID [--streams N]"),
    }
}

/// A photo-like JPEG: smooth gradients with fine noise, so it compresses like a photo
/// (about 1.5–3 bits per pixel at quality 90).
fn photo_jpeg(width: u32, height: u32) -> Vec<u8> {
    let mut seed = 0x2545_f491_u32;
    let image = RgbImage::from_fn(width, height, |x, y| {
        seed ^= seed << 13;
        seed ^= seed >> 17;
        seed ^= seed << 5;
        let noise = seed % 24;
        image::Rgb([
            ((x * 255 / width + noise) % 256) as u8,
            ((y * 255 / height + noise) % 256) as u8,
            (((x + y) * 128 / (width + height)) + noise) as u8,
        ])
    });
    let mut out = Vec::new();
    DynamicImage::ImageRgb8(image)
        .write_with_encoder(JpegEncoder::new_with_quality(&mut out, 90))
        .expect("encode");
    out
}

fn status_kib(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1).and_then(|v| v.parse().ok()))
        })
        .unwrap_or(0)
}

fn sizes() -> anyhow::Result<()> {
    let exe = std::env::current_exe()?;
    println!(
        "| image | JPEG bytes | served | processing ms (median of 3) | RSS before MiB | peak RSS MiB |"
    );
    println!("|---|---|---|---|---|---|");
    for (width, height, label) in SIZES {
        let path = std::env::temp_dir().join(format!("media-bench-{width}x{height}.jpg"));
        if !path.exists() {
            std::fs::write(&path, photo_jpeg(width, height))?;
        }
        let bytes = std::fs::metadata(&path)?.len();
        let mut runs = Vec::new();
        for _ in 0..3 {
            let out = std::process::Command::new(&exe)
                .arg("one")
                .arg(&path)
                .output()?;
            if !out.status.success() {
                bail!("{label}: {}", String::from_utf8_lossy(&out.stderr));
            }
            let line = String::from_utf8(out.stdout)?;
            let v: Vec<String> = line.split_whitespace().map(str::to_owned).collect();
            runs.push(v);
        }
        runs.sort_by_key(|v| v[0].parse::<u64>().unwrap_or(0));
        let mid = &runs[1];
        println!(
            "| {label} | {} | {} | {} | {:.1} | {:.1} |",
            bytes,
            mid[3],
            mid[0],
            mid[1].parse::<f64>()? / 1024.0,
            mid[2].parse::<f64>()? / 1024.0,
        );
    }
    Ok(())
}

/// One image in this process: prints `ms rss_before_kib peak_kib served`.
fn one(path: &Path) -> anyhow::Result<()> {
    let bytes = std::fs::read(path).context("read")?;
    let defaults = shared::config::MediaConfig::defaults();
    let bounds = Bounds {
        max_pixels: defaults.decode_max_pixels,
        max_alloc: defaults.decode_max_bytes,
        thumbnail_max_px: defaults.thumbnail_max_px,
        image_max_px: defaults.image_max_px,
    };
    let before = status_kib("VmRSS:");
    let started = Instant::now();
    let processed = process(&bytes, Kind::Jpeg, &bounds)?;
    let ms = started.elapsed().as_millis();
    println!(
        "{ms} {before} {} {}×{}",
        status_kib("VmHWM:"),
        processed.width,
        processed.height
    );
    Ok(())
}

fn arg(args: &[String], name: &str) -> Option<String> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
}

fn pid_rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1).and_then(|v| v.parse().ok()))
        })
        .unwrap_or(0)
}

async fn token(client: &reqwest::Client, url: &str, email: &str) -> anyhow::Result<String> {
    let v: Value = client
        .post(format!("{url}/api/dev/token"))
        .json(&json!({ "email": email }))
        .send()
        .await?
        .json()
        .await?;
    Ok(v["token"].as_str().context("token")?.to_owned())
}

async fn streams(args: &[String]) -> anyhow::Result<()> {
    let url = arg(args, "--url").context("--url")?;
    let pid: u32 = arg(args, "--server-pid").context("--server-pid")?.parse()?;
    let n: usize = arg(args, "--streams").map_or(Ok(1000), |s| s.parse())?;
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()?;
    let owner = token(&client, &url, "media-bench@example.com").await?;
    let room = format!("media-bench-{}", std::process::id());
    let created = client
        .post(format!("{url}/api/rooms"))
        .bearer_auth(&owner)
        .json(&json!({ "id": room }))
        .send()
        .await?;
    if !created.status().is_success() {
        bail!("create room: {}", created.status());
    }
    let idle = pid_rss_kib(pid);

    // The streams: each its own user and connection, read until the end.
    let mut readers = Vec::new();
    for i in 0..n {
        let t = token(&client, &url, &format!("listener{i}@example.com")).await?;
        let response = reqwest::Client::new()
            .get(format!("{url}/api/rooms/{room}/stream"))
            .bearer_auth(t)
            .send()
            .await?;
        if !response.status().is_success() {
            bail!("stream {i}: {}", response.status());
        }
        readers.push(tokio::spawn(async move {
            let mut body = response.bytes_stream();
            while let Some(Ok(_)) = body.next().await {}
        }));
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let with_streams = pid_rss_kib(pid);

    let photo = photo_jpeg(4000, 3000);
    let upload: Value = client
        .post(format!("{url}/api/uploads"))
        .bearer_auth(&owner)
        .json(&json!({"room_id": room, "file_name": "photo.jpg", "content_type": "image/jpeg", "size": photo.len()}))
        .send()
        .await?
        .json()
        .await?;
    let mut put = client
        .put(upload["url"].as_str().context("url")?)
        .body(photo.clone());
    for (k, v) in upload["headers"].as_object().context("headers")? {
        put = put.header(k, v.as_str().unwrap_or_default());
    }
    let put = put.send().await?;
    if !put.status().is_success() {
        bail!("PUT: {}", put.status());
    }
    let started = Instant::now();
    let sent: Value = client
        .post(format!("{url}/api/rooms/{room}/messages"))
        .bearer_auth(&owner)
        .json(&json!({"content": "", "file_ids": [upload["id"]]}))
        .send()
        .await?
        .json()
        .await?;
    let mut peak = 0;
    let mut done_ms = None;
    while started.elapsed() < Duration::from_secs(60) {
        peak = peak.max(pid_rss_kib(pid));
        let listed: Value = client
            .get(format!("{url}/api/rooms/{room}/messages"))
            .bearer_auth(&owner)
            .send()
            .await?
            .json()
            .await?;
        let file = listed["messages"]
            .as_array()
            .and_then(|m| m.iter().find(|m| m["id"] == sent["id"]))
            .map(|m| m["files"][0].clone())
            .unwrap_or_default();
        if file["processing"] == false {
            done_ms = Some(started.elapsed().as_millis());
            println!(
                "served: {} {}×{}",
                file["served"], file["width"], file["height"]
            );
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let after = pid_rss_kib(pid);
    let mib = |k: u64| k as f64 / 1024.0;
    println!(
        "| streams | RSS idle MiB | RSS with streams MiB | peak while processing MiB | after MiB | send → processed ms |"
    );
    println!("|---|---|---|---|---|---|");
    println!(
        "| {n} | {:.1} | {:.1} | {:.1} | {:.1} | {} |",
        mib(idle),
        mib(with_streams),
        mib(peak),
        mib(after),
        done_ms.map_or("not done in 60 s".into(), |ms| ms.to_string())
    );
    for r in readers {
        r.abort();
    }
    Ok(())
}
