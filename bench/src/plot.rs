//! `plot`: PNG charts from JSON-lines results: latency percentiles per case, server memory per
//! idle connection, and the max-fan-out staircase. Text is drawn with a TrueType font read from
//! disk (DejaVu Sans, Debian's fonts-dejavu-core), so no fontconfig is needed.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{anyhow, Context, Result};
use plotters::prelude::*;
use plotters::style::{register_font, FontStyle};
use serde_json::Value;

const FONTS: &[&str] = &[
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/truetype/liberation/LiberationSans-Regular.ttf",
];

fn load_font() -> Result<()> {
    let path = FONTS
        .iter()
        .find(|p| Path::new(p).exists())
        .ok_or_else(|| anyhow!("no TrueType font found (apt-get install fonts-dejavu-core)"))?;
    let bytes: &'static [u8] = Box::leak(std::fs::read(path)?.into_boxed_slice());
    register_font("sans-serif", FontStyle::Normal, bytes)
        .map_err(|_| anyhow!("cannot load font {path}"))?;
    Ok(())
}

fn color(server: &str, i: usize) -> RGBColor {
    match server {
        "chorus" => RGBColor(0x1f, 0x77, 0xb4),
        "sockudo" => RGBColor(0xd6, 0x27, 0x28),
        _ => {
            let c = Palette99::pick(i + 2).to_rgba();
            RGBColor(c.0, c.1, c.2)
        }
    }
}

type Series = BTreeMap<String, Vec<(f64, f64)>>;

/// Mean of y per (server, x) over rounds.
fn mean_points(raw: BTreeMap<String, BTreeMap<u64, Vec<f64>>>) -> Series {
    raw.into_iter()
        .map(|(s, xs)| {
            let pts = xs
                .into_iter()
                .map(|(x, ys)| (x as f64 / 1000.0, ys.iter().sum::<f64>() / ys.len() as f64))
                .collect();
            (s, pts)
        })
        .collect()
}

#[allow(clippy::too_many_arguments)]
fn line_chart(
    path: &Path,
    title: &str,
    x_desc: &str,
    y_desc: &str,
    series: &Series,
    x_labels: Option<&[&str]>,
    log_x: bool,
) -> Result<()> {
    let root = BitMapBackend::new(path, (900, 520)).into_drawing_area();
    root.fill(&WHITE)?;
    let all: Vec<(f64, f64)> = series.values().flatten().copied().collect();
    let (xmin, xmax) = all
        .iter()
        .fold((f64::MAX, f64::MIN), |(a, b), p| (a.min(p.0), b.max(p.0)));
    let ymin = all.iter().map(|p| p.1).fold(f64::MAX, f64::min).max(1e-3);
    let ymax = all
        .iter()
        .map(|p| p.1)
        .fold(f64::MIN, f64::max)
        .max(ymin * 10.0);
    let mut builder = ChartBuilder::on(&root);
    let chart = builder
        .caption(title, ("sans-serif", 22))
        .margin(15)
        .x_label_area_size(45)
        .y_label_area_size(70);
    let ylog = (ymin / 2.0..ymax * 2.0).log_scale();
    let names: Vec<String> = x_labels
        .unwrap_or(&[])
        .iter()
        .map(|s| s.to_string())
        .collect();
    let fmt_x = move |x: &f64| -> String {
        if names.is_empty() {
            if *x >= 1.0 {
                format!("{x:.0}")
            } else {
                format!("{x}")
            }
        } else {
            let i = x.round() as usize;
            if (x - x.round()).abs() < 1e-6 {
                names.get(i).cloned().unwrap_or_default()
            } else {
                String::new()
            }
        }
    };
    macro_rules! draw {
        ($chart:expr) => {{
            let mut chart = $chart;
            chart
                .configure_mesh()
                .x_desc(x_desc)
                .y_desc(y_desc)
                .x_label_formatter(&fmt_x)
                .y_label_formatter(&|y: &f64| {
                    if *y >= 1.0 {
                        format!("{y:.0}")
                    } else {
                        format!("{y:.2}")
                    }
                })
                .label_style(("sans-serif", 15))
                .draw()?;
            for (i, (server, pts)) in series.iter().enumerate() {
                let c = color(server, i);
                chart
                    .draw_series(LineSeries::new(pts.clone(), c.stroke_width(3)))?
                    .label(server.as_str())
                    .legend(move |(x, y)| {
                        PathElement::new(vec![(x, y), (x + 24, y)], c.stroke_width(3))
                    });
                chart.draw_series(pts.iter().map(|p| Circle::new(*p, 5, c.filled())))?;
            }
            chart
                .configure_series_labels()
                .label_font(("sans-serif", 16))
                .background_style(WHITE.mix(0.85))
                .border_style(BLACK)
                .position(SeriesLabelPosition::UpperLeft)
                .draw()?;
        }};
    }
    if log_x {
        draw!(chart.build_cartesian_2d((xmin / 1.5..xmax * 1.5).log_scale(), ylog)?);
    } else {
        draw!(chart.build_cartesian_2d(xmin - 0.3..xmax + 0.3, ylog)?);
    }
    root.present()
        .with_context(|| format!("writing {}", path.display()))?;
    println!("wrote {}", path.display());
    Ok(())
}

pub fn plot(files: &[PathBuf], out_dir: &Path) -> Result<()> {
    load_font()?;
    std::fs::create_dir_all(out_dir)?;
    let records = crate::report::load(files)?;

    // Memory per idle connection against the number of connections.
    let mut mem: BTreeMap<String, BTreeMap<u64, Vec<f64>>> = BTreeMap::new();
    for r in records.iter().filter(|r| r["scenario"] == "idle") {
        if let (Some(s), Some(n), Some(b)) = (
            r["server"].as_str(),
            r["connections"].as_u64(),
            r["server_bytes_per_connection"].as_f64(),
        ) {
            mem.entry(s.into())
                .or_default()
                .entry(n)
                .or_default()
                .push(b / 1024.0);
        }
    }
    if !mem.is_empty() {
        let series = mean_points(mem);
        line_chart(
            &out_dir.join("memory-per-connection.png"),
            "Server RSS per idle connection",
            "idle connections (thousands)",
            "KiB per connection (log)",
            &series,
            None,
            true,
        )?;
    }

    // Latency percentiles, one chart per fan-out or chat case.
    let labels = ["p50", "p90", "p99", "p99.9", "max"];
    let keys = ["p50", "p90", "p99", "p999", "max"];
    let mut cases: BTreeMap<String, BTreeMap<String, Vec<&Value>>> = BTreeMap::new();
    for r in &records {
        let s = r["scenario"].as_str().unwrap_or("");
        if matches!(s, "fanout" | "chat") {
            let case = r["case"].as_str().unwrap_or(s).to_owned();
            let server = r["server"].as_str().unwrap_or("?").to_owned();
            cases
                .entry(case)
                .or_default()
                .entry(server)
                .or_default()
                .push(r);
        }
    }
    for (case, by_server) in cases {
        let mut series = Series::new();
        for (server, rs) in by_server {
            let pts = keys
                .iter()
                .enumerate()
                .map(|(i, k)| {
                    let ys: Vec<f64> = rs
                        .iter()
                        .filter_map(|r| r["latency_ms"][k].as_f64())
                        .collect();
                    (i as f64, ys.iter().sum::<f64>() / ys.len().max(1) as f64)
                })
                .collect();
            series.insert(server, pts);
        }
        line_chart(
            &out_dir.join(format!("latency-{case}.png")),
            &format!("Delivery latency percentiles: {case}"),
            "percentile",
            "ms (log)",
            &series,
            Some(&labels),
            false,
        )?;
    }

    // Max fan-out staircase: p99 against delivered msg/s.
    let mut steps: BTreeMap<String, BTreeMap<u64, Vec<f64>>> = BTreeMap::new();
    for r in records
        .iter()
        .filter(|r| r["scenario"] == "max-fanout-step")
    {
        if let (Some(s), Some(d), Some(p)) = (
            r["server"].as_str(),
            r["target_rate"].as_f64(),
            r["latency_ms"]["p99"].as_f64(),
        ) {
            let delivered = d * r["subscribers_per_channel"].as_f64().unwrap_or(1.0);
            steps
                .entry(s.into())
                .or_default()
                .entry(delivered as u64)
                .or_default()
                .push(p);
        }
    }
    if !steps.is_empty() {
        line_chart(
            &out_dir.join("max-fanout-p99.png"),
            "Fan-out: p99 latency as the offered load grows",
            "offered deliveries per second (thousands)",
            "p99 ms (log)",
            &mean_points(steps),
            None,
            true,
        )?;
    }
    Ok(())
}
