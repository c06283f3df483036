"""Loading the generic real-data TSVs: good rows kept in order, bad rows counted or refused."""
import pytest

from onesearch_jax.data.real_catalog import load_judgments, load_products, targets


def write(path, text):
    path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture
def products_file(tmp_path):
    return write(tmp_path / "products.tsv",
                 "product_uid\ttitle\n"
                 "100001\tSimpson Strong-Tie 12-Gauge Angle\n"
                 "100002\tBEHR Premium 1-gal. Décor Deck Coating\n"
                 "100003\tToo\tmany columns\n"
                 "100001\tA duplicate of the first product\n"
                 "100004\tHampton Bay 90° Pull-Up Shade\n"
                 "\n")


def test_load_products_keeps_good_rows_in_order_and_counts_bad_ones(products_file):
    products = load_products(products_file)
    assert products.product_ids == ["100001", "100002", "100004"]
    assert products.titles[1] == "BEHR Premium 1-gal. Décor Deck Coating"
    assert products.titles[2] == "Hampton Bay 90° Pull-Up Shade"
    report = products.report
    assert (report.rows_read, report.rows_kept) == (5, 3)
    assert report.problems == {"column_count": 1, "duplicate_product": 1}
    assert report.example_lines == {"column_count": [4], "duplicate_product": [5]}
    assert "column_count=1" in report.summary()


def test_strict_load_names_file_and_line(products_file):
    with pytest.raises(ValueError, match=r"products\.tsv:4: column_count"):
        load_products(products_file, strict=True)


def test_missing_file_and_wrong_header(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.tsv"):
        load_products(tmp_path / "nope.tsv")
    bad = write(tmp_path / "j.tsv", "search_term\tproduct_uid\trelevance\nx\t1\t3\n")
    with pytest.raises(ValueError, match=r"\['query', 'product_uid', 'relevance'\]"):
        load_judgments(bad)


def test_a_file_that_is_not_utf8_is_named_with_its_line(tmp_path):
    path = tmp_path / "latin1.tsv"
    path.write_bytes("product_uid\ttitle\n1\tdrill\n2\tCafé drill\n".encode("latin-1"))
    with pytest.raises(ValueError, match=r"latin1.tsv:3: not UTF-8 \(byte 0xe9\)"):
        load_products(path)


def test_load_judgments_groups_by_query_and_skips_malformed_rows(tmp_path, products_file):
    path = write(tmp_path / "judgments.tsv",
                 "query\tproduct_uid\trelevance\n"
                 "angle bracket\t100001\t3\n"       # 2
                 "deck coating\t100002\t2.67\n"     # 3
                 "angle bracket\t100002\t1.33\n"    # 4
                 "angle bracket\t100001\t1\n"       # 5 duplicate pair
                 "\t100001\t3\n"                    # 6 empty query
                 "deck coating\t100004\thigh\n"     # 7 non-numeric
                 "deck coating\t999999\t3\n"        # 8 unknown product
                 "shade\t100004\n")                 # 9 column count
    judgments = load_judgments(path, load_products(products_file))
    assert judgments.queries == ["angle bracket", "deck coating"]
    assert judgments.relevance == [{"100001": 3.0, "100002": 1.33}, {"100002": 2.67}]
    assert judgments.report.problems == {"duplicate_pair": 1, "empty_query": 1,
                                         "bad_relevance": 1, "unknown_product": 1,
                                         "column_count": 1}
    assert judgments.report.example_lines["unknown_product"] == [8]
    # Without a corpus there is nothing to check product ids against.
    assert "unknown_product" not in load_judgments(path).report.problems
    with pytest.raises(ValueError, match=r"judgments\.tsv:5: duplicate_pair"):
        load_judgments(path, strict=True)


def test_targets_keep_products_at_or_above_threshold(tmp_path):
    path = write(tmp_path / "judgments.tsv",
                 "query\tproduct_uid\trelevance\n"
                 "a\t1\t2.67\na\t2\t2.33\na\t3\t3\nb\t1\t1\n")
    judgments = load_judgments(path)
    assert targets(judgments) == [{"1", "3"}, set()]
    assert targets(judgments, min_relevance=1.0) == [{"1", "2", "3"}, {"1"}]
    with pytest.raises(ValueError, match="min_relevance"):
        targets(judgments, min_relevance=float("nan"))
