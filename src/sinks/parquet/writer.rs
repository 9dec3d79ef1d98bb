//! Arrow batch → Parquet bytes. The file is built in memory (bounded by `roll_bytes`) and handed to the
//! object store in one atomic put or multipart upload: readers never see a partial file.

use arrow_array::RecordBatch;
use arrow_schema::SchemaRef;
use bytes::Bytes;
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::errors::ParquetError;
use parquet::file::properties::WriterProperties;

use super::config::Codec;

/// Encodes `batches` (all of `schema`) as one Parquet file.
///
/// # Errors
/// [`ParquetError`] from the encoder.
pub fn encode(
    schema: SchemaRef,
    batches: &[RecordBatch],
    codec: Codec,
    row_group_rows: usize,
) -> Result<Bytes, ParquetError> {
    let compression = match codec {
        Codec::Zstd => Compression::ZSTD(ZstdLevel::default()),
        Codec::Snappy => Compression::SNAPPY,
        Codec::None => Compression::UNCOMPRESSED,
    };
    let props = WriterProperties::builder()
        .set_compression(compression)
        .set_max_row_group_row_count(Some(row_group_rows.max(1)))
        .set_created_by(format!("hooklake {}", env!("CARGO_PKG_VERSION")))
        .build();
    let size: usize = batches.iter().map(RecordBatch::get_array_memory_size).sum();
    let mut out = Vec::with_capacity(size / 2);
    let mut writer = ArrowWriter::try_new(&mut out, schema, Some(props))?;
    for batch in batches {
        writer.write(batch)?;
    }
    writer.close()?;
    Ok(Bytes::from(out))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::journal::{Entry, Record};
    use crate::sinks::parquet::table::{events_batch, events_table};
    use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
    use parquet::file::reader::{FileReader, SerializedFileReader};

    fn rec(seq: u64) -> Record {
        Record {
            seq,
            entry: Entry {
                source: "s".into(),
                received_at: 1_000_000 * seq as i64,
                source_ip: "127.0.0.1".into(),
                event: "CONTENTS.ADDED".into(),
                id: format!("id-{seq}"),
                name: None,
                dedup_key: None,
                headers: vec![],
                body: Bytes::from(format!("{{\"event\":\"CONTENTS.ADDED\",\"id\":\"id-{seq}\",\"data\":{{}}}}")),
            },
        }
    }

    #[test]
    fn written_file_reads_back_with_the_declared_schema_and_utc_micros() {
        let records: Vec<Record> = (0..10).map(rec).collect();
        let refs: Vec<&Record> = records.iter().collect();
        let batch = events_batch(&refs).expect("batch");
        for codec in [Codec::Zstd, Codec::Snappy, Codec::None] {
            let bytes = encode(batch.schema(), std::slice::from_ref(&batch), codec, 4).expect("encode");
            let reader = ParquetRecordBatchReaderBuilder::try_new(bytes.clone()).expect("reader");
            assert_eq!(reader.schema().fields(), events_table().schema.fields());
            let read: Vec<RecordBatch> = reader.build().expect("build").collect::<Result<_, _>>().expect("read");
            assert_eq!(read.iter().map(RecordBatch::num_rows).sum::<usize>(), 10);
            let file = SerializedFileReader::new(bytes).expect("file");
            assert_eq!(file.metadata().num_row_groups(), 3, "row groups of at most 4 rows");
            let schema = file.metadata().file_metadata().schema_descr();
            let received = schema.column(2);
            assert_eq!(received.name(), "_received_at");
            assert_eq!(
                format!("{:?}", received.logical_type_ref()),
                "Some(Timestamp(TimestampType { is_adjusted_to_u_t_c: true, unit: MICROS }))"
            );
            assert_eq!(received.self_type().get_basic_info().repetition(), parquet::basic::Repetition::REQUIRED);
        }
    }
}
