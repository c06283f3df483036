"""The Kaggle converter: latin-1 CSV in, loadable UTF-8 TSVs out, bad rows counted, split by query."""
import pytest
from absl import flags
from absl.testing import flagsaver

from experiments import convert_homedepot
from onesearch_jax.data.real_catalog import load_judgments, load_products

RAW = (
    'id,product_uid,product_title,search_term,relevance\n'
    '2,100001,Simpson Strong-Tie 12-Gauge Angle,angle bracket,3\n'
    '3,100001,Simpson Strong-Tie 12-Gauge Angle,l bracket,2.5\n'
    '9,100002,"BEHR Premium 1-gal. Décor, Deck\tCoating",deck over,3\n'
    '16,100005,Hampton Bay 90° Pull-Up Shade,pull up shade,2.33\n'
    '17,100005,Hampton Bay 90° Pull-Up Shade,angle bracket,1\n'
    '18,100006,Broken row with too few fields,3\n'
    '20,100007,Whirlpool Range,range,high\n'
    '21,100001,Simpson Strong-Tie 12-Gauge Angle,angle bracket,1\n'
)


@pytest.fixture
def train_csv(tmp_path):
    path = tmp_path / "train.csv"
    path.write_bytes(RAW.encode("latin-1"))
    return path


def test_main_writes_loadable_utf8_files_and_reports_bad_rows(train_csv, tmp_path, capsys):
    out_dir = tmp_path / "out"
    flags.FLAGS.unparse_flags()
    with flagsaver.flagsaver():
        flags.FLAGS(["convert_homedepot", f"--train_csv={train_csv}", f"--out_dir={out_dir}"])
        convert_homedepot.main(["convert_homedepot"])
    printed = capsys.readouterr().out
    assert "column_count=1" in printed and "bad_relevance=1" in printed
    assert "duplicate_pair=1" in printed
    products = load_products(out_dir / "products.tsv", strict=True)
    assert products.product_ids == ["100001", "100002", "100005"]
    assert products.titles[1] == "BEHR Premium 1-gal. Décor, Deck Coating"  # tab collapsed
    assert products.titles[2] == "Hampton Bay 90° Pull-Up Shade"
    judgments = load_judgments(out_dir / "judgments.tsv", products, strict=True)
    assert judgments.queries == ["angle bracket", "l bracket", "deck over", "pull up shade"]
    assert judgments.relevance[0] == {"100001": 3.0, "100005": 1.0}
    assert not (out_dir / "judgments_dev.tsv").exists()


def test_dev_split_is_by_query_seeded_and_complete(train_csv, tmp_path):
    _, counts, _ = convert_homedepot.convert(train_csv, tmp_path / "a", dev_fraction=0.5, seed=3)
    _, again, _ = convert_homedepot.convert(train_csv, tmp_path / "b", dev_fraction=0.5, seed=3)
    read = lambda d, name: (d / name).read_text(encoding="utf-8")
    assert read(tmp_path / "a", "judgments_dev.tsv") == read(tmp_path / "b", "judgments_dev.tsv")
    train = load_judgments(tmp_path / "a" / "judgments_train.tsv", strict=True)
    dev = load_judgments(tmp_path / "a" / "judgments_dev.tsv", strict=True)
    assert len(dev.queries) == 2 and len(train.queries) == 2
    assert not set(train.queries) & set(dev.queries)
    assert counts["judgments_train.tsv"] + counts["judgments_dev.tsv"] == counts["judgments.tsv"]


def test_bad_inputs_raise(train_csv, tmp_path):
    with pytest.raises(FileNotFoundError, match="missing.csv"):
        convert_homedepot.convert(tmp_path / "missing.csv", tmp_path / "out")
    with pytest.raises(ValueError, match="dev_fraction"):
        convert_homedepot.convert(train_csv, tmp_path / "out", dev_fraction=1.0)
    wrong = tmp_path / "wrong.csv"
    wrong.write_text("id,uid,title,query,relevance\n1,2,t,q,3\n", encoding="latin-1")
    with pytest.raises(ValueError, match="search_term"):
        convert_homedepot.convert(wrong, tmp_path / "out")
    # No usable row: refused before anything is written (a good conversion stays whole).
    convert_homedepot.convert(train_csv, tmp_path / "good")
    before = (tmp_path / "good" / "products.tsv").read_text(encoding="utf-8")
    header_only = tmp_path / "header_only.csv"
    header_only.write_text(RAW.splitlines()[0] + "\n", encoding="latin-1")
    with pytest.raises(ValueError, match="no usable rows.*nothing written"):
        convert_homedepot.convert(header_only, tmp_path / "good")
    assert (tmp_path / "good" / "products.tsv").read_text(encoding="utf-8") == before
    with pytest.raises(ValueError, match="is a file"):
        convert_homedepot.convert(train_csv, train_csv)


def test_a_conversion_without_a_split_removes_an_earlier_split(train_csv, tmp_path):
    out = tmp_path / "out"
    convert_homedepot.convert(train_csv, out, dev_fraction=0.5)
    _, counts, removed = convert_homedepot.convert(train_csv, out)
    assert removed == ["judgments_train.tsv", "judgments_dev.tsv"]
    assert sorted(p.name for p in out.iterdir()) == ["judgments.tsv", "products.tsv"]


@pytest.mark.parametrize("encoding", ["utf-8", "utf-8-sig"])
def test_a_utf8_copy_reads_as_utf8(train_csv, tmp_path, encoding):
    utf8 = tmp_path / "utf8.csv"
    utf8.write_text(RAW, encoding=encoding)
    titles, _, _ = convert_homedepot.read_raw(utf8)
    latin1, _, _ = convert_homedepot.read_raw(train_csv)
    assert titles == latin1 and titles["100005"] == "Hampton Bay 90° Pull-Up Shade"
