"""Source: records from CSV, TSV, JSON Lines and Parquet files or streams; column checks."""
