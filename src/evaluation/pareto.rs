//! The Pareto plot of a detoxification sweep (SVG): toxicity against perplexity.

use std::ops::Range;

use plotters::coord::types::RangedCoordf64;
use plotters::prelude::*;

use super::{DetoxReport, Metrics};
use crate::bail;
use crate::bootstrap::Interval;
use crate::error::{Error, Result};

type Chart<'a, 'b> = ChartContext<'a, SVGBackend<'b>, Cartesian2d<RangedCoordf64, RangedCoordf64>>;

const PALETTE: [RGBColor; 8] = [
    RGBColor(31, 119, 180),
    RGBColor(214, 39, 40),
    RGBColor(44, 160, 44),
    RGBColor(148, 103, 189),
    RGBColor(255, 127, 14),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(23, 190, 207),
];

/// What the plot shows: the raw point, the other points on the chart, their 95% intervals as error bars
/// (perplexity, EMT), the title, and the axes' ranges.
struct PlotData<'m> {
    raw: Option<&'m Metrics>,
    points: Vec<&'m Metrics>,
    bars: Vec<(Interval, Interval)>,
    title: String,
    x: Range<f64>,
    y: Range<f64>,
}

fn draw_err(e: &dyn std::fmt::Display) -> Error {
    Error::Input(format!("plot: {e}"))
}

/// An SVG Pareto plot: toxicity (EMT, primary judge) against perplexity, one line per site/mode through its α
/// values, starting at the raw point, each point labelled by α.
pub fn pareto_svg(metrics: &[Metrics], intervals: Option<&[DetoxReport]>, title: &str) -> Result<String> {
    let data = plot_data(metrics, intervals, title)?;
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (860, 560)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| draw_err(&e))?;
        let mut chart = ChartBuilder::on(&root)
            .caption(data.title.as_str(), ("sans-serif", 20))
            .margin(16)
            .x_label_area_size(44)
            .y_label_area_size(56)
            .build_cartesian_2d(data.x.clone(), data.y.clone())
            .map_err(|e| draw_err(&e))?;
        chart
            .configure_mesh()
            .x_desc("perplexity under the raw model (lower is more fluent)")
            .y_desc("Expected Maximum Toxicity, tox-block (lower is better)")
            .draw()
            .map_err(|e| draw_err(&e))?;
        draw_lines(&mut chart, &data)?;
        draw_bars_and_raw(&mut chart, &data)?;
        chart
            .configure_series_labels()
            .border_style(BLACK)
            .background_style(WHITE.mix(0.9))
            .position(SeriesLabelPosition::UpperRight)
            .draw()
            .map_err(|e| draw_err(&e))?;
        root.present().map_err(|e| draw_err(&e))?;
    }
    Ok(svg)
}

fn plot_data<'m>(metrics: &'m [Metrics], intervals: Option<&[DetoxReport]>, title: &str) -> Result<PlotData<'m>> {
    let raw = metrics.iter().find(|m| m.setting.is_raw());
    // Settings whose mean perplexity is over 3× raw's would squash every other point into one corner: left out,
    // and named in the title.
    let limit = raw.map_or(f64::INFINITY, |r| 3.0 * r.perplexity);
    let points: Vec<&Metrics> =
        metrics.iter().filter(|m| m.perplexity.is_finite() && m.emt.is_finite() && m.perplexity <= limit).collect();
    let off: Vec<String> = metrics.iter().filter(|m| m.perplexity > limit).map(|m| m.setting.label()).collect();
    let title = match off.is_empty() {
        true => title.to_string(),
        false => format!("{title} (off the chart, perplexity > 3× raw: {})", off.join(", ")),
    };
    if points.is_empty() {
        bail!(Input, "nothing to plot");
    }
    // 95% intervals as error bars: EMT vertically, mean perplexity horizontally.
    let bars: Vec<(Interval, Interval)> = intervals
        .unwrap_or(&[])
        .iter()
        .filter(|r| r.values.emt.lo.is_finite() && r.values.perplexity_mean.lo.is_finite())
        .filter(|r| r.values.perplexity_mean.point <= limit)
        .map(|r| (Interval { hi: r.values.perplexity_mean.hi.min(limit), ..r.values.perplexity_mean }, r.values.emt))
        .collect();
    let xs = points.iter().map(|m| (m.perplexity, m.perplexity)).chain(bars.iter().map(|b| (b.0.lo, b.0.hi)));
    let (mut x0, mut x1) = xs.fold((f64::MAX, f64::MIN), |(a, b), (lo, hi)| (a.min(lo), b.max(hi)));
    let ys = points.iter().map(|m| (m.emt, m.emt)).chain(bars.iter().map(|b| (b.1.lo, b.1.hi)));
    let (mut y0, mut y1) = ys.fold((f64::MAX, f64::MIN), |(a, b), (lo, hi)| (a.min(lo), b.max(hi)));
    let (dx, dy) = ((x1 - x0).max(1.0) * 0.08, (y1 - y0).max(0.05) * 0.1);
    x0 -= dx;
    x1 += dx;
    y0 = (y0 - dy).max(0.0);
    y1 += dy;
    Ok(PlotData { raw, points, bars, title, x: x0..x1, y: y0..y1 })
}

/// One line per site/mode (and variant), from the raw point through its α values in order, each point labelled.
fn draw_lines(chart: &mut Chart, data: &PlotData) -> Result<()> {
    let mut groups: Vec<(String, Vec<&Metrics>)> = Vec::new();
    for m in data.points.iter().filter(|m| !m.setting.is_raw()) {
        let key = format!("{}/{}{}", m.setting.site, m.setting.mode, m.setting.variants());
        match groups.iter_mut().find(|(k, _)| *k == key) {
            Some((_, v)) => v.push(m),
            None => groups.push((key, vec![m])),
        }
    }
    for (i, (key, mut group)) in groups.into_iter().enumerate() {
        group.sort_by(|a, b| a.setting.alpha.total_cmp(&b.setting.alpha));
        let color = PALETTE[i % PALETTE.len()];
        let mut line: Vec<(f64, f64)> = data.raw.iter().map(|r| (r.perplexity, r.emt)).collect();
        line.extend(group.iter().map(|m| (m.perplexity, m.emt)));
        chart
            .draw_series(LineSeries::new(line, color.stroke_width(2)))
            .map_err(|e| draw_err(&e))?
            .label(key)
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], color.stroke_width(2)));
        chart
            .draw_series(group.iter().map(|m| {
                EmptyElement::at((m.perplexity, m.emt))
                    + Circle::new((0, 0), 4, color.filled())
                    + Text::new(format!("{}", m.setting.alpha), (6, -14), ("sans-serif", 12).into_font().color(&color))
            }))
            .map_err(|e| draw_err(&e))?;
    }
    Ok(())
}

/// The error bars, then the raw point on top.
fn draw_bars_and_raw(chart: &mut Chart, data: &PlotData) -> Result<()> {
    for (ppl, emt) in &data.bars {
        let (x, y) = (ppl.point, emt.point);
        let grey = RGBColor(120, 120, 120).stroke_width(1);
        chart
            .draw_series([
                PathElement::new(vec![(x, emt.lo), (x, emt.hi)], grey),
                PathElement::new(vec![(ppl.lo, y), (ppl.hi, y)], grey),
            ])
            .map_err(|e| draw_err(&e))?;
    }
    if let Some(r) = data.raw {
        chart
            .draw_series(std::iter::once(
                EmptyElement::at((r.perplexity, r.emt))
                    + Circle::new((0, 0), 6, BLACK.filled())
                    + Text::new("raw", (8, -16), ("sans-serif", 13).into_font()),
            ))
            .map_err(|e| draw_err(&e))?;
    }
    Ok(())
}
