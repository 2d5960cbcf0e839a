"""Write the corpus files whose exact bytes matter: Parquet, gzip, xlsx, Windows-1252, UTF-8 with BOM, CRLF, tabs.

Run once from the repository root and commit the outputs (the tests never run this script):

    .venv/bin/python analytics_pipeline_tests/corpus/make_binary_cases.py

Every output is deterministic (no timestamps in gzip or zip headers), so running it again rewrites the same bytes.
The plain UTF-8, LF text cases are committed as they are; this script only writes the ones an editor could change.
"""

import datetime as dt
import gzip
import zipfile
from decimal import Decimal
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

HERE = Path(__file__).resolve().parent


def text(name: str, lines: list[str], encoding: str = "utf-8", newline: str = "\n", bom: bool = False) -> None:
    data = "".join(line + newline for line in lines).encode(encoding)
    (HERE / name).write_bytes((b"\xef\xbb\xbf" if bom else b"") + data)


# A point-of-sale export saved by German Excel: Windows-1252 ("Zürich", "„Original“", "€"), semicolons, CRLF,
# decimal commas and a euro sign in the price.
text(
    "pos_export_cp1252_crlf.csv",
    [
        "Order ID;Date;Region;Product;Qty;Price;Currency",
        "K-20001;2026-01-15 08:05;Zürich;Café crème;2;€4,50;EUR",
        "K-20002;2026-01-15 08:17;Zürich;Croissant au beurre;3;€2,20;EUR",
        "K-20003;2026-01-15 09:40;München;Käsekuchen;1;€3,90;EUR",
        "K-20004;2026-01-15 12:01;Wien;Sachertorte „Original“;1;€6,80;EUR",
        "K-20005;2026-01-16 07:55;Köln;Kölsch 0,2 l;10;€1,90;EUR",
        "K-20006;2026-01-16 23:59;Zürich;Rösti mit Spiegelei;1;€14,50;EUR",
        "K-20007;2026-01-16 10:00;Zürich;Espresso;1;gratis;EUR",
    ],
    encoding="cp1252",
    newline="\r\n",
)

# A German ERP export (Windows-1252, semicolons, CRLF): headers nobody could guess, day-first dates in local time,
# decimal commas with thousands dots, "ST-" (Storno) invoices as cancellations. Loads only with a mapping entry.
text(
    "erp_export_2026.csv",
    [
        "Belegnummer;Belegdatum;Kunde;Land;Artikel;Bezeichnung;Menge;Einzelpreis;Gesamtbetrag;Währung",
        "RE-2026-0001;02.01.2026 08:30;K-1001;Deutschland;A-100;Schraubendreher-Set „Profi“;10;12,50;125,00;EUR",
        "RE-2026-0002;15.01.2026 23:30;K-1002;Österreich;A-200;Bohrmaschine 18V;2;1.249,00;2.498,00;EUR",
        "RE-2026-0003;03.04.2026;K-1001;Deutschland;A-300;Werkbank (Buche);1;899,90;899,90;EUR",
        "RE-2026-0004;30.06.2026 00:15;K-1003;Schweiz;A-100;Schraubendreher-Set „Profi“;4;12,50;50,00;EUR",
        "ST-2026-0001;01.07.2026 09:00;K-1002;Österreich;A-200;Storno Bohrmaschine 18V;-1;1.249,00;-1.249,00;EUR",
        "RE-2026-0005;31.12.2026 23:59;K-1004;Deutschland;A-400;Gehörschutz;3;7,99;23,97;EUR",
    ],
    encoding="cp1252",
    newline="\r\n",
)

# Excel "CSV UTF-8" on Windows: a byte-order mark, CRLF, currency symbols, thousands separators, "(250.00)".
text(
    "excel_utf8_bom_crlf.csv",
    [
        "Invoice Number,Invoice Date,Customer,Country,Item,Quantity,Unit Price,Total,Currency",
        'INV-2026-0001,2026-03-02T09:15:00Z,Zoë Müller,Switzerland,"Consulting, senior (day rate)",2,"$1,250.00","$2,500.00",USD',
        'INV-2026-0002,2026-03-03T14:00:00+01:00,Café Olé GmbH,Germany,Licence “Pro” annual,1,"€1.499,00","€1.499,00",EUR',
        'INV-2026-0003,2026-03-04,Łódź Tools Sp. z o.o.,Poland,"Support hours ""premium""",12,EUR 95.00,"EUR 1,140.00",EUR',
        'INV-2026-0004,2026-03-05T08:00:00Z,Zoë Müller,Switzerland,Credit note,1,($250.00),($250.00),USD',
    ],
    newline="\r\n",
    bom=True,
)

# A marketplace report as TSV: US dates with 24-hour and AM/PM clocks, a quoted field holding a tab, "$" and "€".
text(
    "marketplace_orders.tsv",
    [
        "Date\tOrder\tSKU\tQty\tPrice\tMarket\tNote",
        "4/1/2026 9:05\t114-3941689-8772232\tB07XJ8C8F5\t1\t$24.99\tamazon.com\tgift wrap, ribbon",
        "4/1/2026 13:45\t114-3941689-8772232\tB08N5WRWNW\t2\t$9.49\tamazon.com\t",
        '4/2/2026 1:05 PM\t305-1234567-7654321\tB07XJ8C8F5\t1\t€22,99\tamazon.de\t"Geschenk\tverpackt"',
        "4/3/2026 23:59\t114-0000001-0000002\tB08N5WRWNW\t-1\t$9.49\tamazon.com\treturn",
    ],
)

# Order webhooks appended as NDJSON with CRLF: a Python repr instead of JSON, a keep-alive string, an empty order
# id, a retried (exact duplicate) delivery, numbers as strings and as JSON numbers.
text(
    "shop_orders_webhook.ndjson",
    [
        '{"order_id":"W-9001","created_at":"2026-07-04T10:00:00-04:00","customer_id":"cus_A","country":"US","sku":"TEE-1","quantity":2,"price":"19.50","currency":"USD"}',
        '{"order_id":"W-9002","created_at":"2026-07-04T18:30:00-04:00","customer_id":"cus_B","country":"CA","sku":"HAT-2","quantity":1,"price":24,"currency":"CAD"}',
        "{'order_id': 'W-9003', 'created_at': '2026-07-05T09:00:00Z', 'price': '10.00'}",
        '"ping"',
        '{"order_id":"W-9004","created_at":"2026-07-05","customer_id":null,"country":"US","sku":"MUG-3","quantity":"3","price":"$12.00","currency":"USD"}',
        '{"order_id":"","created_at":"2026-07-05T12:00:00Z","customer_id":"cus_D","country":"US","sku":"MUG-3","quantity":1,"price":"12.00","currency":"USD"}',
        '{"order_id":"W-9006","created_at":"2026-07-05T23:45:00-04:00","customer_id":"cus_C","country":"US","sku":"STICKER","quantity":1,"price":5.25,"currency":"USD"}',
        '{"order_id":"W-9007","created_at":"2026-07-06T08:00:00Z","customer_id":"cus_C","country":"US","sku":"COFFEE-KG","quantity":1.5,"price":"4.00","currency":"USD"}',
        '{"order_id":"W-9001","created_at":"2026-07-04T10:00:00-04:00","customer_id":"cus_A","country":"US","sku":"TEE-1","quantity":2,"price":"19.50","currency":"USD"}',
    ],
    newline="\r\n",
)

# Empty files: nothing at all, and a header with no line ending after it.
(HERE / "empty_file.csv").write_bytes(b"")
(HERE / "header_only_no_newline.csv").write_bytes(b"order_id,timestamp,amount")

# A gzipped UCI Online Retail month with one line that has an extra field.
retail_gz = [
    "InvoiceNo,StockCode,Description,Quantity,InvoiceDate,UnitPrice,CustomerID,Country",
    "581587,22613,PACK OF 20 SPACEBOY NAPKINS,12,12/9/2011 12:50,0.85,12680,France",
    "581587,22899,CHILDREN'S APRON DOLLY GIRL ,6,12/9/2011 12:50,2.1,12680,France",
    "581587,23254,CHILDRENS CUTLERY DOLLY GIRL ,4,12/9/2011 12:50,4.15,12680,France",
    "581587,23255,CHILDRENS CUTLERY CIRCUS PARADE,4,12/9/2011 12:50,4.15,12680,France",
    "581587,22138,BAKING SET 9 PIECE RETROSPOT ,3,12/9/2011 12:50,4.95,12680,France",
    "581587,POST,POSTAGE,1,12/9/2011 12:50,18,12680,France",
    "C581569,20979,36 PENCILS TUBE RED RETROSPOT,-5,12/9/2011 11:58,1.25,17315,United Kingdom",
    "581585,22466,FAIRY TALE COTTAGE NIGHT LIGHT,12,12/9/2011 12:31,1.95,15804,United Kingdom",
    '581586,21217,"RED RETROSPOT ROUND CAKE TINS",24,12/9/2011 12:49,8.95,13113,United Kingdom',
    "581586,20685,DOORMAT RED RETROSPOT,10,12/9/2011 12:49,7.08,13113,United Kingdom,EXTRA",
]
(HERE / "online_retail_2011_12.csv.gz").write_bytes(
    gzip.compress("".join(line + "\n" for line in retail_gz).encode(), mtime=0)
)

# Parquet from a pandas/Spark job: zone-aware timestamps (New York), decimal prices, a cancellation.
new_york = dt.timezone(dt.timedelta(hours=-4))  # EDT, in force on all these dates
pq.write_table(
    pa.table(
        {
            "order_id": pa.array(["O-1", "O-2", "O-3", "C-4"]),
            "customer_id": pa.array(["cus_1", "cus_2", "cus_1", "cus_3"]),
            "country": pa.array(["US", "US", "CA", "US"]),
            "sku": pa.array(["TEE-1", "JACKET-9", "STICKER", "TEE-1"]),
            "quantity": pa.array([2, 1, 3, -1], pa.int32()),
            "unit_price": pa.array(
                [Decimal("10.50"), Decimal("99.99"), Decimal("0.33"), Decimal("10.50")], pa.decimal128(10, 2)
            ),
            "created_at": pa.array(
                [
                    dt.datetime(2026, 5, 1, 9, 0, tzinfo=new_york),
                    dt.datetime(2026, 5, 1, 21, 30, tzinfo=new_york),
                    dt.datetime(2026, 5, 3, 0, 15, tzinfo=new_york),
                    dt.datetime(2026, 5, 3, 12, 0, tzinfo=new_york),
                ],
                pa.timestamp("us", tz="America/New_York"),
            ),
        }
    ),
    HERE / "orders_tz_aware.parquet",
)

# Parquet from a database dump: zone-less millisecond timestamps, float prices and customer ids (as pandas writes
# UCI data), a null timestamp and a null price.
pq.write_table(
    pa.table(
        {
            "InvoiceNo": pa.array(["536365", "536366", "536367", "536368", "536369"]),
            "InvoiceDate": pa.array(
                [
                    dt.datetime(2010, 12, 1, 8, 26),
                    dt.datetime(2010, 12, 1, 8, 28),
                    None,
                    dt.datetime(2010, 12, 1, 8, 34),
                    dt.datetime(2010, 12, 1, 23, 59, 59, 500000),
                ],
                pa.timestamp("ms"),
            ),
            "Quantity": pa.array([6, 6, 32, 3, 1], pa.int64()),
            "UnitPrice": pa.array([2.55, 1.85, 1.69, None, 0.1], pa.float64()),
            "CustomerID": pa.array([17850.0, 17850.0, 13047.0, 13047.0, None], pa.float64()),
            "Country": pa.array(["United Kingdom"] * 5),
        }
    ),
    HERE / "orders_naive.parquet",
)

# A real (minimal) Excel workbook: the watched folder does not read spreadsheets.
_XLSX_PARTS = {
    "[Content_Types].xml": (
        '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'
        '<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
        '<Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/>'
        '<Default Extension="xml" ContentType="application/xml"/>'
        '<Override PartName="/xl/workbook.xml" '
        'ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml"/>'
        '<Override PartName="/xl/worksheets/sheet1.xml" '
        'ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.worksheet+xml"/>'
        "</Types>"
    ),
    "_rels/.rels": (
        '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'
        '<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
        '<Relationship Id="rId1" '
        'Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/officeDocument" '
        'Target="xl/workbook.xml"/>'
        "</Relationships>"
    ),
    "xl/workbook.xml": (
        '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'
        '<workbook xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main" '
        'xmlns:r="http://schemas.openxmlformats.org/officeDocument/2006/relationships">'
        '<sheets><sheet name="Orders" sheetId="1" r:id="rId1"/></sheets>'
        "</workbook>"
    ),
    "xl/_rels/workbook.xml.rels": (
        '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'
        '<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
        '<Relationship Id="rId1" '
        'Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/worksheet" '
        'Target="worksheets/sheet1.xml"/>'
        "</Relationships>"
    ),
    "xl/worksheets/sheet1.xml": (
        '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'
        '<worksheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main"><sheetData>'
        '<row r="1"><c r="A1" t="inlineStr"><is><t>order_id</t></is></c>'
        '<c r="B1" t="inlineStr"><is><t>timestamp</t></is></c>'
        '<c r="C1" t="inlineStr"><is><t>amount</t></is></c></row>'
        '<row r="2"><c r="A2" t="inlineStr"><is><t>X-1</t></is></c>'
        '<c r="B2" t="inlineStr"><is><t>2026-06-01T10:00:00Z</t></is></c>'
        '<c r="C2"><v>42.5</v></c></row>'
        "</sheetData></worksheet>"
    ),
}
with zipfile.ZipFile(HERE / "orders_2026_06.xlsx", "w", zipfile.ZIP_DEFLATED) as workbook:
    for part, xml in _XLSX_PARTS.items():
        workbook.writestr(zipfile.ZipInfo(part, date_time=(1980, 1, 1, 0, 0, 0)), xml)

print("\n".join(sorted(p.name for p in HERE.iterdir() if p.is_file())))
