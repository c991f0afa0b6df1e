"""The run report: `W/report.md` and `W/report.html` from a work dir's artifacts.

The report only reads what the stages wrote (JSON summaries and PNGs); a stage
that has not run is listed as such, never filled in.
"""

from __future__ import annotations

import html
import json
import os
import re

from diffinf_jax import fileio


def _load(workdir: str, rel: str):
  path = os.path.join(workdir, rel)
  if not os.path.isfile(path):
    return None
  with open(path) as f:
    return json.load(f)


def _fmt(x, digits=4):
  if x is None:
    return "n/a"
  if isinstance(x, float):
    return f"{x:.{digits}f}"
  return str(x)


def _image(workdir: str, rel: str, alt: str) -> list[str]:
  return [f"![{alt}]({rel})", ""] if os.path.isfile(
      os.path.join(workdir, rel)) else []


def _table(header: list[str], rows: list[list]) -> list[str]:
  out = ["| " + " | ".join(header) + " |",
         "|" + "|".join(" --- " for _ in header) + "|"]
  out += ["| " + " | ".join(_fmt(c) for c in r) + " |" for r in rows]
  return out + [""]


def _config_section(workdir):
  cfg = _load(workdir, "config.json")
  if cfg is None:
    return ["## Config", "", "No config.json in this work dir.", ""]
  d, m, t = cfg["data"], cfg["model"], cfg["train"]
  rows = [["dataset", d["name"]], ["task", d["task"]],
          ["classes", m["num_classes"]], ["image size", d["image_size"]],
          ["noise", f"{cfg['noise']['kind']} {cfg['noise']['rate']}"],
          ["classifier", f"{m['name']} x{m['width_multiplier']} "
                         f"({m['stem']} stem)"],
          ["epochs / batch / lr", f"{t['num_epochs']} / {t['batch_size']} / "
                                  f"{t['lr']}"],
          ["influence", f"{cfg['influence']['method']}, tau "
                        f"{cfg['influence']['tau']}"],
          ["seed", cfg["seed"]]]
  return ["## Config", ""] + _table(["key", "value"], rows) + [
      "Full config: `config.json`; package versions: `versions.json`.", ""]


def _noise_section(workdir):
  noise = _load(workdir, "data/noise.json")
  if noise is None:
    return ["## Data and noise", "", "Data stage not run.", ""]
  rows = [[k, noise[k]] for k in ("num_train", "num_flipped", "rate_requested",
                                  "rate_realised")]
  rows.append(["per-class rate", ", ".join(
      f"{r:.3f}" for r in noise["per_class_rate"])])
  return ["## Data and noise", ""] + _table(["", "value"], rows)


def _train_section(workdir):
  out = ["## Classifier", ""]
  metrics = _load(workdir, "eval/metrics.json")
  out += _image(workdir, "train/curves.png", "learning curves")
  if metrics is None:
    return out + ["Evaluation not run.", ""]
  out += _table(["accuracy", "macro AUROC (OvR)", "kappa (linear)", "kappa",
                 "test images"],
                [[metrics.get("accuracy"), metrics.get("auroc_macro_ovr"),
                  metrics.get("kappa_linear"), metrics.get("kappa"),
                  metrics.get("num_test")]])
  return out + _image(workdir, "eval/confusion.png", "confusion matrix")


def _influence_section(workdir):
  out = ["## Self-influence", ""]
  det = _load(workdir, "influence/detection.json")
  if det is None:
    return out + ["Influence stage not run.", ""]
  out += _table(["tau", "flagged", "precision vs flipped", "recall",
                 "AUROC (flip detection)", "random precision"],
                [[det.get("tau"), det.get("num_flagged"), det.get("precision"),
                  det.get("recall"), det.get("auroc_flip"),
                  det.get("random_precision")]])
  for rel, alt in (("influence/histograms.png", "scores clean vs flipped"),
                   ("influence/top_flagged.png", "top flagged images")):
    out += _image(workdir, rel, alt)
  pred = _load(workdir, "predictor/metrics.json")
  if pred is not None:
    out += [f"Influence predictor h_omega: AUROC {_fmt(pred.get('auroc'))} on "
            f"{pred.get('eval_size')} held-out samples (fit on "
            f"{pred.get('train_size')}).", ""]
  return out


def _correction_section(workdir):
  out = ["## Correction", ""]
  s = _load(workdir, "correct/summary.json")
  if s is None:
    return out + ["Correction stage not run.", ""]
  rows = [["corrected images", s.get("num_corrected")],
          ["mean LPIPS to original", s.get("lpips_mean")],
          ["mean identity cosine", s.get("identity_cos_mean")],
          ["p(assigned label) before / after",
           f"{_fmt(s.get('p_assigned_before'))} / "
           f"{_fmt(s.get('p_assigned_after'))}"],
          ["p_high before / after", f"{_fmt(s.get('p_high_before'))} / "
                                    f"{_fmt(s.get('p_high_after'))}"]]
  if "oracle_agreement_before" in s:
    rows.append(["oracle agrees with assigned label, before / after",
                 f"{_fmt(s['oracle_agreement_before'])} / "
                 f"{_fmt(s['oracle_agreement_after'])}"])
    if s.get("oracle_agreement_flipped_before") is not None:
      rows.append([f"... on the {s.get('num_flipped_corrected')} truly "
                   "flipped samples, before / after",
                   f"{_fmt(s['oracle_agreement_flipped_before'])} / "
                   f"{_fmt(s['oracle_agreement_flipped_after'])}"])
  out += _table(["", "value"], rows)
  by_class = s.get("lpips_by_class") or {}
  if by_class:
    out += ["Class-wise mean LPIPS:", ""]
    out += _table(list(by_class), [[by_class[k] for k in by_class]])
  for rel in s.get("grids", []):
    rel = os.path.relpath(os.path.join(workdir, rel), workdir) if not \
        os.path.isabs(rel) else os.path.relpath(rel, workdir)
    out += _image(workdir, rel, "before / after")
  return out


def _compare_section(workdir):
  out = ["## Comparison with noisy-label baselines", ""]
  path = os.path.join(workdir, "compare", "table.md")
  if not os.path.isfile(path):
    return out + ["Comparison not run.", ""]
  out += open(path).read().strip().splitlines() + [""]
  return out + _image(workdir, "compare/table.png", "comparison")


def build_markdown(workdir: str) -> str:
  lines = ["# DiffInf run report", "",
           f"Work dir: `{os.path.basename(os.path.abspath(workdir))}`", ""]
  run = _load(workdir, "run.json")
  if run:
    order = ("data", "train", "influence", "predictor", "correct", "evaluate",
             "compare")
    names = sorted(run, key=lambda k: order.index(k) if k in order else 99)
    lines += ["## Stages", ""] + _table(
        ["stage", "status", "seconds"],
        [[k, run[k].get("status"), run[k].get("seconds")] for k in names])
  for section in (_config_section, _noise_section, _train_section,
                  _influence_section, _correction_section, _compare_section):
    lines += section(workdir)
  return "\n".join(lines).rstrip() + "\n"


def _inline(text: str) -> str:
  text = html.escape(text)
  text = re.sub(r"`([^`]+)`", r"<code>\1</code>", text)
  return re.sub(r"\*\*([^*]+)\*\*", r"<b>\1</b>", text)


def markdown_to_html(md: str, title: str = "DiffInf run report") -> str:
  """Converts the subset of markdown the report uses (headings, tables,
  images, paragraphs) into a standalone HTML page."""
  body, table = [], []

  def flush_table():
    if not table:
      return
    rows = [r for r in table if not re.fullmatch(r"\|( --- \|)+", r)]
    cells = [[c.strip() for c in r.strip("|").split("|")] for r in rows]
    body.append("<table>")
    body.append("<tr>" + "".join(f"<th>{_inline(c)}</th>" for c in cells[0])
                + "</tr>")
    for r in cells[1:]:
      body.append("<tr>" + "".join(f"<td>{_inline(c)}</td>" for c in r)
                  + "</tr>")
    body.append("</table>")
    table.clear()

  for line in md.splitlines():
    if line.startswith("|"):
      table.append(line)
      continue
    flush_table()
    img = re.fullmatch(r"!\[([^\]]*)\]\(([^)]+)\)", line.strip())
    if img:
      body.append(f'<p><img alt="{html.escape(img.group(1))}" '
                  f'src="{html.escape(img.group(2))}"></p>')
    elif line.startswith("#"):
      level = len(line) - len(line.lstrip("#"))
      body.append(f"<h{level}>{_inline(line[level:].strip())}</h{level}>")
    elif line.strip():
      body.append(f"<p>{_inline(line)}</p>")
  flush_table()
  style = ("body{font-family:sans-serif;max-width:960px;margin:auto}"
           "table{border-collapse:collapse}td,th{border:1px solid #ccc;"
           "padding:3px 8px}img{max-width:100%}")
  return (f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>"
          f"{html.escape(title)}</title><style>{style}</style></head><body>\n"
          + "\n".join(body) + "\n</body></html>\n")


def write_report(workdir: str) -> tuple[str, str]:
  """Writes W/report.md and W/report.html; returns their paths."""
  md = build_markdown(workdir)
  md_path = os.path.join(workdir, "report.md")
  html_path = os.path.join(workdir, "report.html")
  fileio.write_text(md_path, md)
  fileio.write_text(html_path, markdown_to_html(md))
  return md_path, html_path
