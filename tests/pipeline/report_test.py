"""The run report reads what stages wrote and never invents numbers."""


from diffinf_jax import cli
from diffinf_jax.pipeline import report


def test_report_after_data_stage(tmp_path):
  w = str(tmp_path / "w")
  assert cli.main(["data", "--config", "configs/demo.py:tiny",
                   "--workdir", w]) == 0
  md_path, html_path = report.write_report(w)
  md = open(md_path).read()
  assert "| num_flipped | 10 |" in md
  assert "Detection stage not run." in md
  assert "Correction stage not run." in md
  page = open(html_path).read()
  assert "<table>" in page and "<h2>Data and noise</h2>" in page


def test_markdown_to_html_images_and_code():
  page = report.markdown_to_html("# T\n\n![a](x.png)\n\nuse `diffinf run`\n")
  assert '<img alt="a" src="x.png">' in page
  assert "<code>diffinf run</code>" in page
