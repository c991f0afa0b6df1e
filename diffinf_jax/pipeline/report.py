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
from diffinf_jax import pipeline
from diffinf_jax import workdir as wd


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
  cfg = _load(workdir, wd.CONFIG)
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
          ["influence", cfg["influence"]["method"]],
          ["flagged set", f"{cfg['detection']['flag_by']}, "
                          f"{cfg['detection']['num_flagged']} "
                          f"(tau {cfg['detection']['tau']})"],
          ["seed", cfg["seed"]]]
  return ["## Config", ""] + _table(["key", "value"], rows) + [
      "Full config: `config.json`; package versions: `versions.json`.", ""]


def _noise_section(workdir):
  noise = _load(workdir, wd.rel("data", "noise.json"))
  if noise is None:
    return ["## Data and noise", "", "Data stage not run.", ""]
  rows = [[k, noise[k]] for k in ("num_train", "num_flipped", "rate_requested",
                                  "rate_realised")]
  rows.append(["per-class rate", ", ".join(
      f"{r:.3f}" for r in noise["per_class_rate"])])
  return ["## Data and noise", ""] + _table(["", "value"], rows)


def _train_section(workdir):
  out = ["## Classifier", ""]
  metrics = _load(workdir, wd.rel("evaluate", "metrics.json"))
  out += _image(workdir, wd.rel("train", "curves.png"), "learning curves")
  if metrics is None:
    return out + ["Evaluation not run.", ""]
  out += _table(["accuracy", "macro AUROC (OvR)", "kappa (linear)", "kappa",
                 "test images"],
                [[metrics.get("accuracy"), metrics.get("auroc_macro_ovr"),
                  metrics.get("kappa_linear"), metrics.get("kappa"),
                  metrics.get("num_test")]])
  return out + _image(workdir, wd.rel("evaluate", "confusion.png"),
                      "confusion matrix")


def _detection_section(workdir):
  out = ["## Detection: which labels are wrong", ""]
  path = os.path.join(workdir, wd.rel("detect", "table.md"))
  if not os.path.isfile(path):
    return out + ["Detection stage not run.", ""]
  summary = _load(workdir, wd.rel("detect", "stamp.json"))
  if summary:
    s = summary["summary"]
    out += [f"Flagged set: **{s['num_flagged']}** samples by "
            f"`{s['flag_set']}` (precision {_fmt(s['precision'], 3)}, random "
            f"{_fmt(s['random_precision'], 3)}).", ""]
  issues = _load(workdir, wd.rel("detect", "issues.json"))
  if issues:
    out += [f"Confident learning (out-of-sample probabilities) estimates "
            f"{issues['num_issues']} wrong labels (noise rate "
            f"{_fmt(issues['noise_rate'], 3)}); the injected noise flipped "
            f"{issues['true_num_flipped']}.", ""]
  out += open(path).read().strip().splitlines() + [""]
  for rel, alt in ((wd.rel("detect", "histograms.png"),
                    "scores clean vs flipped"),
                   (wd.rel("detect", "top_flagged.png"),
                    "top flagged images")):
    out += _image(workdir, rel, alt)
  pred = _load(workdir, wd.rel("predictor", "metrics.json"))
  if pred is not None:
    out += [f"Influence predictor h_omega: AUROC {_fmt(pred.get('auroc'))} on "
            f"{pred.get('eval_size')} held-out samples (fit on "
            f"{pred.get('train_size')}).", ""]
  return out


def _correction_section(workdir):
  out = ["## Correction", ""]
  s = _load(workdir, wd.rel("correct", "summary.json"))
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
  if "judge_agreement_before" in s:
    rows.append(["independent judge agrees with the assigned label, "
                 "before / after",
                 f"{_fmt(s['judge_agreement_before'])} / "
                 f"{_fmt(s['judge_agreement_after'])}"])
    n_flip = s.get("num_flipped_corrected")
    for part, label in (("flipped", f"the {n_flip} truly flipped samples"),
                        ("clean", "the correctly labelled ones")):
      if s.get(f"judge_agreement_{part}_before") is not None:
        rows.append([f"... on {label}, before / after",
                     f"{_fmt(s[f'judge_agreement_{part}_before'])} / "
                     f"{_fmt(s[f'judge_agreement_{part}_after'])}"])
  out += _table(["", "value"], rows)
  ablation = os.path.join(workdir, wd.rel("correct", "ablation.md"))
  if os.path.isfile(ablation):
    out += ["Ablation (judge: share agreeing with the assigned label):", ""]
    out += open(ablation).read().strip().splitlines() + [""]
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
  path = os.path.join(workdir, wd.rel("compare", "table.md"))
  if not os.path.isfile(path):
    return out + ["Comparison not run.", ""]
  out += open(path).read().strip().splitlines() + [""]
  out += _image(workdir, wd.rel("compare", "table.png"), "comparison")
  return out + _image(workdir, wd.rel("compare", "forest.png"),
                      "paired differences")


def build_markdown(workdir: str) -> str:
  lines = ["# DiffInf run report", "",
           f"Work dir: `{os.path.basename(os.path.abspath(workdir))}`", ""]
  run = _load(workdir, wd.RUN_RECORD)
  if run:
    order = tuple(pipeline.STAGES)
    names = sorted(run, key=lambda k: order.index(k) if k in order else 99)
    lines += ["## Stages", ""] + _table(
        ["stage", "status", "seconds"],
        [[k, run[k].get("status"), run[k].get("seconds")] for k in names])
  for section in (_config_section, _noise_section, _train_section,
                  _detection_section, _correction_section, _compare_section):
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
  md_path = os.path.join(workdir, wd.REPORT_MD)
  html_path = os.path.join(workdir, wd.REPORT_HTML)
  fileio.write_text(md_path, md)
  fileio.write_text(html_path, markdown_to_html(md))
  return md_path, html_path
