//! The audit table's definition for query engines (`custody lake ddl`): the
//! current [`audit_schema`] rendered as each engine's `CREATE` statement, over a
//! sink's Hive-partitioned layout (`dt=YYYY-MM-DD/hour=HH/`).
//!
//! A table declared with the full current schema reads files of every earlier
//! version too: engines that bind Parquet columns by name read a column or struct
//! field a file lacks as null. That is why the statement, not one file's footer,
//! should give the schema: engines that take the schema from a file (Spark without
//! `mergeSchema`, pyarrow and polars datasets) lose the columns that file lacks.

use crate::schema::audit_schema;
use arrow_schema::{DataType, Field};
use std::fmt::Write as _;

/// The query engines a definition is printed for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Engine {
    /// Apache Spark SQL (3.x and 4.x): a partitioned `USING parquet` table.
    Spark,
    /// Trino's Hive connector: a partitioned external table.
    Trino,
    /// Amazon Athena: an external table with partition projection on `dt`/`hour`.
    Athena,
    /// DuckDB: a view over `read_parquet` with `union_by_name`.
    Duckdb,
}

/// What to name the table and where its files are.
#[derive(Clone, Debug)]
pub struct Table<'a> {
    /// The table's name, as the engine should see it (`custody_audit`,
    /// `hive.custody.audit`).
    pub name: &'a str,
    /// The sink's root: an object store URL or an absolute directory.
    pub location: &'a str,
    /// Athena: the first `dt` partition projection considers (`YYYY-MM-DD`).
    pub since: &'a str,
}

/// The statements that declare the audit table for `engine`, each ending in `;`.
pub fn ddl(engine: Engine, table: &Table<'_>) -> String {
    let schema = audit_schema();
    let location = table.location.trim_end_matches('/');
    let mut out = String::new();
    let _ = writeln!(
        out,
        "-- The custody audit trail, schema version {} (docs/audit-schema.md).",
        crate::SCHEMA_VERSION
    );
    match engine {
        Engine::Duckdb => {
            let _ = writeln!(
                out,
                "-- Columns a file lacks (files of earlier versions) read as null.\n\
                 CREATE OR REPLACE VIEW {} AS\n\
                 SELECT * FROM read_parquet('{}/**/*.parquet',\n    \
                 hive_partitioning = true, hive_types = {{'dt': VARCHAR, 'hour': VARCHAR}},\n    \
                 union_by_name = true);",
                table.name,
                sql_string(location)
            );
        }
        Engine::Spark => {
            out.push_str(&format!("CREATE TABLE IF NOT EXISTS {} (\n", table.name));
            columns(&mut out, engine, schema.fields());
            let _ = writeln!(
                out,
                "  `dt` STRING,\n  `hour` STRING\n)\nUSING parquet\n\
                 PARTITIONED BY (`dt`, `hour`)\nLOCATION '{}';\n\
                 -- Registers the partitions written so far; run it again (or on a schedule) for new ones.\n\
                 MSCK REPAIR TABLE {};",
                sql_string(location),
                table.name
            );
        }
        Engine::Trino => {
            let (schema_name, table_name) = split_table(table.name);
            out.push_str(&format!("CREATE TABLE IF NOT EXISTS {} (\n", table.name));
            columns(&mut out, engine, schema.fields());
            let _ = writeln!(
                out,
                "  dt VARCHAR,\n  hour VARCHAR\n)\nWITH (\n  format = 'PARQUET',\n  \
                 external_location = '{}/',\n  partitioned_by = ARRAY['dt', 'hour']\n);\n\
                 -- Registers the partitions written so far; run it again (or on a schedule) for new ones.\n\
                 CALL system.sync_partition_metadata('{}', '{}', 'ADD');",
                sql_string(location),
                sql_string(schema_name),
                sql_string(table_name)
            );
        }
        Engine::Athena => {
            out.push_str(&format!(
                "CREATE EXTERNAL TABLE IF NOT EXISTS {} (\n",
                table.name
            ));
            columns(&mut out, engine, schema.fields());
            // The last column line ends in ",\n": Hive DDL lists partition columns apart.
            out.truncate(out.len() - 2);
            let location = sql_string(location);
            let _ = writeln!(
                out,
                "\n)\nPARTITIONED BY (`dt` string, `hour` string)\nSTORED AS PARQUET\n\
                 LOCATION '{location}/'\nTBLPROPERTIES (\n  \
                 -- Partition projection: no partitions to register, new hours are read as they appear.\n  \
                 'projection.enabled' = 'true',\n  \
                 'projection.dt.type' = 'date',\n  \
                 'projection.dt.format' = 'yyyy-MM-dd',\n  \
                 'projection.dt.range' = '{},NOW',\n  \
                 'projection.dt.interval' = '1',\n  \
                 'projection.dt.interval.unit' = 'DAYS',\n  \
                 'projection.hour.type' = 'integer',\n  \
                 'projection.hour.range' = '0,23',\n  \
                 'projection.hour.digits' = '2',\n  \
                 'storage.location.template' = '{location}/dt=${{dt}}/hour=${{hour}}/'\n);",
                sql_string(table.since)
            );
        }
    }
    out
}

/// One line per column, each ending in `,\n`.
fn columns(out: &mut String, engine: Engine, fields: &arrow_schema::Fields) {
    for field in fields {
        let _ = writeln!(
            out,
            "  {} {},",
            quote(engine, field.name()),
            sql_type(engine, field.data_type())
        );
    }
}

/// `name` as the engine quotes an identifier (every name is quoted, so none can
/// collide with a keyword: `count`, `path` and `version` are fields here).
fn quote(engine: Engine, name: &str) -> String {
    match engine {
        Engine::Trino | Engine::Duckdb => format!("\"{name}\""),
        Engine::Spark | Engine::Athena => format!("`{name}`"),
    }
}

/// The engine's type for an Arrow type of the audit schema.
fn sql_type(engine: Engine, data_type: &DataType) -> String {
    let name = |spark: &str, trino: &str, athena: &str| -> String {
        match engine {
            Engine::Spark => spark,
            Engine::Trino | Engine::Duckdb => trino,
            Engine::Athena => athena,
        }
        .to_owned()
    };
    match data_type {
        DataType::Utf8 => name("STRING", "VARCHAR", "string"),
        DataType::Int32 => name("INT", "INTEGER", "int"),
        DataType::Int64 => name("BIGINT", "BIGINT", "bigint"),
        DataType::Float64 => name("DOUBLE", "DOUBLE", "double"),
        DataType::Boolean => name("BOOLEAN", "BOOLEAN", "boolean"),
        // Microseconds since the epoch, UTC (Parquet `isAdjustedToUTC`).
        DataType::Timestamp(_, _) => name("TIMESTAMP", "TIMESTAMP(6)", "timestamp"),
        DataType::List(item) => match engine {
            Engine::Trino | Engine::Duckdb => {
                format!("ARRAY({})", sql_type(engine, item.data_type()))
            }
            Engine::Spark => format!("ARRAY<{}>", sql_type(engine, item.data_type())),
            Engine::Athena => format!("array<{}>", sql_type(engine, item.data_type())),
        },
        DataType::Struct(fields) => {
            let parts: Vec<String> = fields.iter().map(|f| struct_field(engine, f)).collect();
            match engine {
                Engine::Trino | Engine::Duckdb => format!("ROW({})", parts.join(", ")),
                Engine::Spark => format!("STRUCT<{}>", parts.join(", ")),
                Engine::Athena => format!("struct<{}>", parts.join(",")),
            }
        }
        other => unreachable!("the audit schema has no {other} column"),
    }
}

/// A struct's field in the engine's struct type.
fn struct_field(engine: Engine, field: &Field) -> String {
    let ty = sql_type(engine, field.data_type());
    match engine {
        Engine::Trino | Engine::Duckdb => format!("{} {ty}", quote(engine, field.name())),
        Engine::Spark => format!("{}: {ty}", quote(engine, field.name())),
        Engine::Athena => format!("{}:{ty}", quote(engine, field.name())),
    }
}

/// `schema.table` → (`schema`, `table`); a bare name is in schema `default`.
/// A leading catalog (`hive.custody.audit`) is dropped.
fn split_table(name: &str) -> (&str, &str) {
    let mut parts = name.rsplitn(3, '.');
    let table = parts.next().unwrap_or(name);
    let schema = parts.next().unwrap_or("default");
    (schema, table)
}

/// `s` inside a single-quoted SQL string.
fn sql_string(s: &str) -> String {
    s.replace('\'', "''")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table() -> Table<'static> {
        Table {
            name: "custody_audit",
            location: "s3://audit-bucket/custody/",
            since: "2026-01-01",
        }
    }

    #[test]
    fn every_column_is_declared_for_every_engine() {
        for engine in [Engine::Spark, Engine::Trino, Engine::Athena, Engine::Duckdb] {
            let sql = ddl(engine, &table());
            assert!(
                sql.contains(&format!("schema version {}", crate::SCHEMA_VERSION)),
                "{sql}"
            );
            if engine == Engine::Duckdb {
                assert!(sql.contains("union_by_name = true"), "{sql}");
                continue;
            }
            for field in audit_schema().fields() {
                assert!(
                    sql.contains(&format!("{} ", quote(engine, field.name()))),
                    "{engine:?} lacks {}",
                    field.name()
                );
            }
            assert!(!sql.contains("custody//"), "{sql}");
        }
    }

    #[test]
    fn nested_types_are_spelled_as_each_engine_spells_them() {
        let spark = ddl(Engine::Spark, &table());
        assert!(spark.contains("`principal` STRUCT<`sub`: STRING, `org`: STRING, `role`: STRING, `roles`: ARRAY<STRING>, `issuer`: STRING>,"), "{spark}");
        assert!(spark.contains("`event_time` TIMESTAMP,"));
        let trino = ddl(Engine::Trino, &table());
        assert!(trino.contains("\"redactions\" ARRAY(ROW(\"kind\" VARCHAR, \"path\" VARCHAR, \"count\" BIGINT, \"action\" VARCHAR, \"side\" VARCHAR, \"handling\" VARCHAR))"), "{trino}");
        assert!(
            trino.contains(
                "CALL system.sync_partition_metadata('default', 'custody_audit', 'ADD');"
            )
        );
        let athena = ddl(Engine::Athena, &table());
        assert!(
            athena.contains("`outcome` struct<`status`:int,"),
            "{athena}"
        );
        assert!(athena.contains("'projection.dt.range' = '2026-01-01,NOW'"));
        assert!(athena.contains(
            "'storage.location.template' = 's3://audit-bucket/custody/dt=${dt}/hour=${hour}/'"
        ));
        // The last column is followed by the closing parenthesis, not a comma.
        assert!(
            athena.contains(
                "`anomalies` array<struct<`signal`:string,`score`:double,`baseline`:double,`observed`:double>>\n)"
            ),
            "{athena}"
        );
    }

    #[test]
    fn names_and_locations_are_quoted() {
        assert_eq!(split_table("hive.custody.audit"), ("custody", "audit"));
        assert_eq!(split_table("custody.audit"), ("custody", "audit"));
        assert_eq!(split_table("audit"), ("default", "audit"));
        let sql = ddl(
            Engine::Duckdb,
            &Table {
                name: "t",
                location: "/data/o'brien/audit",
                since: "2026-01-01",
            },
        );
        assert!(sql.contains("'/data/o''brien/audit/**/*.parquet'"), "{sql}");
    }
}
