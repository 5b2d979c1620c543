//! The charts as inline SVG, drawn with plotters' SVG backend (text is left to the browser's
//! fonts, so no font files are read or embedded).
//!
//! Each data line is one `<polyline>` per unbroken run of points, in the color and width its
//! legend entry names: one report gets a color per line; several reports get a color per
//! report and a width per line, so the same line of two runs is told apart by color.
//! Vertical grey lines mark phase starts, dark ones server restarts.

use plotters::prelude::*;

use super::data::{Line, Marker, Run, TimeChart, distribution, markers};

/// Size of every chart, in SVG user units (the page scales them to its width).
const WIDTH: u32 = 640;
const HEIGHT: u32 = 280;

/// Line colors: one per line of a single report, or one per report when several are drawn.
const PALETTE: [RGBColor; 8] = [
    RGBColor(0x1f, 0x77, 0xb4),
    RGBColor(0xff, 0x7f, 0x0e),
    RGBColor(0xd6, 0x27, 0x28),
    RGBColor(0x2c, 0xa0, 0x2c),
    RGBColor(0x94, 0x67, 0xbd),
    RGBColor(0x8c, 0x56, 0x4b),
    RGBColor(0xe3, 0x77, 0xc2),
    RGBColor(0x17, 0xbe, 0xcf),
];
/// Line widths telling the lines of one report apart when several reports share a chart.
const WIDTHS: [u32; 4] = [2, 1, 3, 4];
const PHASE_MARK: RGBColor = RGBColor(0xa0, 0xa0, 0xa0);
const SERVER_MARK: RGBColor = RGBColor(0x33, 0x33, 0x33);
const GRID: RGBColor = RGBColor(0xee, 0xee, 0xee);

/// A legend entry: which report and line a color and width stand for.
#[derive(Debug, Clone, PartialEq)]
pub struct LegendEntry {
    pub run: String,
    pub line: String,
    pub color: String,
    pub width: u32,
    /// Points drawn (intervals with a value).
    pub points: usize,
}

/// A drawn chart.
pub struct Drawn {
    pub svg: String,
    pub legend: Vec<LegendEntry>,
}

fn css(color: RGBColor) -> String {
    format!("#{:02X}{:02X}{:02X}", color.0, color.1, color.2)
}

/// The color and width of line `line` of report `run` of `runs`.
fn style_of(run: usize, line: usize, runs: usize) -> (RGBColor, u32) {
    if runs == 1 {
        (PALETTE[line % PALETTE.len()], 2)
    } else {
        (PALETTE[run % PALETTE.len()], WIDTHS[line % WIDTHS.len()])
    }
}

/// Unbroken runs of points: a gap (`None`) ends one.
fn segments(line: &Line) -> Vec<Vec<(f64, f64)>> {
    let mut out = vec![Vec::new()];
    for p in &line.points {
        match p {
            Some(p) => out.last_mut().map_or((), |s| s.push(*p)),
            None if out.last().is_some_and(|s| !s.is_empty()) => out.push(Vec::new()),
            None => {}
        }
    }
    out.retain(|s| !s.is_empty());
    out
}

/// The y range for values up to `max` (and down to `min`): from 0, or a band below 100 for
/// percentages so a dip to 99% shows.
fn y_range(unit: &str, min: f64, max: f64) -> (f64, f64) {
    if unit == "%" {
        let low = if min.is_finite() {
            (min - 1.0).floor().clamp(0.0, 99.0)
        } else {
            0.0
        };
        return (low, 100.5);
    }
    let top = if max.is_finite() && max > 0.0 {
        max * 1.08
    } else {
        1.0
    };
    (0.0, top)
}

struct Plot<'a> {
    title: &'a str,
    unit: &'a str,
    x_desc: &'a str,
    /// Lines with the index of their report.
    lines: Vec<(usize, &'a str, Line)>,
    markers: Vec<Marker>,
    runs: &'a [Run<'a>],
    x_format: &'a dyn Fn(&f64) -> String,
    fixed_x: Option<(f64, f64)>,
}

fn draw(plot: Plot) -> Result<Drawn, String> {
    let points = plot
        .lines
        .iter()
        .flat_map(|(_, _, l)| l.points.iter().flatten());
    let (mut x0, mut x1, mut y_min, mut y_max) = (f64::MAX, f64::MIN, f64::MAX, f64::MIN);
    for (x, y) in points {
        x0 = x0.min(*x);
        x1 = x1.max(*x);
        y_min = y_min.min(*y);
        y_max = y_max.max(*y);
    }
    for m in &plot.markers {
        x0 = x0.min(m.x);
        x1 = x1.max(m.x);
    }
    let (x0, x1) = match plot.fixed_x {
        Some(range) => range,
        None if x0 <= x1 => (x0.min(0.0), if x1 > x0 { x1 } else { x0 + 1.0 }),
        None => (0.0, 1.0),
    };
    let (y0, y1) = y_range(plot.unit, y_min, y_max);
    let mut svg = String::new();
    let mut legend = Vec::new();
    {
        let root = SVGBackend::with_string(&mut svg, (WIDTH, HEIGHT)).into_drawing_area();
        let fail = |e: &dyn std::fmt::Display| format!("drawing {}: {e}", plot.title);
        root.fill(&WHITE).map_err(|e| fail(&e))?;
        let mut chart = ChartBuilder::on(&root)
            .margin(12)
            .x_label_area_size(36)
            .y_label_area_size(56)
            .build_cartesian_2d(x0..x1, y0..y1)
            .map_err(|e| fail(&e))?;
        chart
            .configure_mesh()
            .light_line_style(GRID)
            .bold_line_style(GRID)
            .x_desc(plot.x_desc)
            .y_desc(plot.unit)
            .x_label_formatter(plot.x_format)
            .y_label_formatter(&|y| format_value(*y))
            .label_style(("sans-serif", 12))
            .axis_desc_style(("sans-serif", 12))
            .draw()
            .map_err(|e| fail(&e))?;
        for marker in &plot.markers {
            let color = if marker.kind == "phase" {
                PHASE_MARK
            } else {
                SERVER_MARK
            };
            chart
                .draw_series(std::iter::once(PathElement::new(
                    vec![(marker.x, y0), (marker.x, y1)],
                    color.stroke_width(1),
                )))
                .map_err(|e| fail(&e))?;
        }
        let mut per_run = vec![0usize; plot.runs.len()];
        for (run, _, line) in &plot.lines {
            let index = per_run[*run];
            per_run[*run] += 1;
            let (color, width) = style_of(*run, index, plot.runs.len());
            let mut drawn = 0;
            for segment in segments(line) {
                drawn += segment.len();
                let single = segment.len() == 1;
                let series = LineSeries::new(segment, color.stroke_width(width));
                // A lone point would be an invisible polyline: give it a dot.
                let series = if single { series.point_size(2) } else { series };
                chart.draw_series(series).map_err(|e| fail(&e))?;
            }
            legend.push(LegendEntry {
                run: plot.runs[*run].label.clone(),
                line: line.name.clone(),
                color: css(color),
                width,
                points: drawn,
            });
        }
        root.present().map_err(|e| fail(&e))?;
    }
    Ok(Drawn { svg, legend })
}

/// Axis numbers without float noise: 1200, 12.5, 0.25.
fn format_value(v: f64) -> String {
    if v == 0.0 {
        "0".into()
    } else if v.abs() >= 100.0 {
        format!("{v:.0}")
    } else if v.abs() >= 1.0 {
        format!("{}", (v * 10.0).round() / 10.0)
    } else {
        format!("{}", (v * 1000.0).round() / 1000.0)
    }
}

/// A chart over time, every report's lines on the same axes (seconds since each run started).
pub fn time_chart(chart: &TimeChart, runs: &[Run]) -> Result<Drawn, String> {
    let mut lines = Vec::new();
    let mut marks = Vec::new();
    for (index, run) in runs.iter().enumerate() {
        for line in chart.lines(run) {
            lines.push((index, run.label.as_str(), line));
        }
        marks.extend(markers(run));
    }
    draw(Plot {
        title: chart.title,
        unit: chart.unit,
        x_desc: "seconds since the start of the run",
        lines,
        markers: marks,
        runs,
        x_format: &|x| format_value(*x),
        fixed_x: None,
    })
}

/// The whole-run latency distribution of every report: latency against percentile.
pub fn distribution_chart(runs: &[Run]) -> Result<Drawn, String> {
    let mut lines = Vec::new();
    for (index, run) in runs.iter().enumerate() {
        for line in distribution(run) {
            lines.push((index, run.label.as_str(), line));
        }
    }
    let last = lines
        .iter()
        .flat_map(|(_, _, l)| l.points.iter().flatten())
        .map(|(x, _)| *x)
        .fold(1.0f64, f64::max)
        .ceil();
    draw(Plot {
        title: "Latency distribution",
        unit: "ms",
        x_desc: "percentile",
        lines,
        markers: Vec::new(),
        runs,
        x_format: &percentile_label,
        fixed_x: Some((0.0, last)),
    })
}

/// The percentile at `x` on the nines scale: 0%, 90%, 99%, 99.9%...
fn percentile_label(x: &f64) -> String {
    let q = (1.0 - 10f64.powf(-x)) * 100.0;
    let digits = (x.ceil() as usize).saturating_sub(2);
    if (x - x.round()).abs() < 1e-9 {
        format!("{q:.digits$}%")
    } else {
        String::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gaps_split_lines_into_segments() {
        let line = Line {
            name: "p99".into(),
            points: vec![
                None,
                Some((0.5, 1.0)),
                Some((1.5, 2.0)),
                None,
                None,
                Some((4.5, 3.0)),
            ],
        };
        assert_eq!(
            segments(&line),
            vec![vec![(0.5, 1.0), (1.5, 2.0)], vec![(4.5, 3.0)]]
        );
    }

    #[test]
    fn percentiles_on_the_nines_scale() {
        assert_eq!(percentile_label(&0.0), "0%");
        assert_eq!(percentile_label(&1.0), "90%");
        assert_eq!(percentile_label(&2.0), "99%");
        assert_eq!(percentile_label(&3.0), "99.9%");
        assert_eq!(percentile_label(&4.0), "99.99%");
        assert_eq!(percentile_label(&1.5), "");
        assert!((super::super::data::nines(0.99) - 2.0).abs() < 1e-9);
    }

    #[test]
    fn several_reports_get_a_color_each_and_a_width_per_line() {
        assert_ne!(style_of(0, 0, 1).0, style_of(0, 1, 1).0);
        assert_eq!(style_of(1, 0, 2).0, style_of(1, 2, 2).0);
        assert_ne!(style_of(0, 0, 2).0, style_of(1, 0, 2).0);
        assert_ne!(style_of(1, 0, 2).1, style_of(1, 2, 2).1);
    }
}
