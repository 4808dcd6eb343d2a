"""Task functions of the books ETL pipeline (DAG `books_etl`).

Plain functions, testable without a scheduler: `scrape` fetches raw HTML, `transform` parses it
(`parse`) into a typed Parquet table, `storage` reads and writes the data bucket, `analyze` builds
the report. Only `config` is imported when the DAG file is parsed; everything else (requests,
BeautifulSoup, pyarrow, pandas, matplotlib, the S3 hook) is imported inside the running task.
"""
