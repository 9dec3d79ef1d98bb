//! Times hooklake's Parquet writer (`sinks::parquet::encode`) on a table read from a Parquet file, so that
//! `benches/parquet_writer.py` can time pyarrow on the very same table. Prints one JSON line.
//!
//! cargo run --release --example encode_bench -- TABLE.parquet [RUNS] [zstd|snappy|none] [ROW_GROUP_ROWS]

use std::time::Instant;

use hooklake::sinks::parquet::{Codec, encode};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let path = args
        .get(1)
        .ok_or_else(|| anyhow::anyhow!("usage: encode_bench TABLE.parquet [RUNS] [CODEC] [ROW_GROUP_ROWS]"))?;
    let runs: usize = args.get(2).map_or(Ok(5), |s| s.parse())?;
    let codec = match args.get(3).map_or("zstd", String::as_str) {
        "snappy" => Codec::Snappy,
        "none" => Codec::None,
        _ => Codec::Zstd,
    };
    let row_group: usize = args.get(4).map_or(Ok(131_072), |s| s.parse())?;
    let reader = ParquetRecordBatchReaderBuilder::try_new(std::fs::File::open(path)?)?.with_batch_size(65_536);
    let schema = reader.schema().clone();
    let batches = reader.build()?.collect::<Result<Vec<_>, _>>()?;
    let rows: usize = batches.iter().map(|b| b.num_rows()).sum();
    let mut secs = Vec::with_capacity(runs);
    let mut size = 0;
    for _ in 0..runs {
        let started = Instant::now();
        let bytes = encode(schema.clone(), &batches, codec, row_group)?;
        secs.push(started.elapsed().as_secs_f64());
        size = bytes.len();
    }
    secs.sort_by(f64::total_cmp);
    let median = secs[secs.len() / 2];
    println!(
        "{}",
        serde_json::json!({"rows": rows, "columns": schema.fields().len(), "runs": runs, "median_s": median,
                           "rows_per_s": rows as f64 / median, "bytes": size, "all_s": secs})
    );
    Ok(())
}
