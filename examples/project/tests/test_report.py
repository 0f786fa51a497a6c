from __future__ import annotations

from inventory import Stock, stock_report


def test_report_has_one_aligned_line_per_item(stock: Stock) -> None:
    assert stock_report(stock) == (
        "SKU        Item       Qty   Price\n"
        "---------  ---------  ---  ------\n"
        "blue-mug   Blue Mug     4  €12.50\n"
        "tea-towel  Tea Towel   10   €7.99\n"
        "Total value: €129.90\n"
    )


def test_report_of_empty_stock_has_headers_and_zero_total() -> None:
    report = stock_report(Stock())
    assert report.splitlines()[0].split() == ["SKU", "Item", "Qty", "Price"]
    assert report.endswith("Total value: €0.00\n")
