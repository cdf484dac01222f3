//! Typed access to the columns of a decoded batch, by path (`action.tool`), that
//! tolerates what older files lack: a column or struct field that is not there reads
//! as null for every row. A column that is there with an unexpected type is an error
//! for its file (it was not written by custody).

use super::FileErrorKind;
use arrow_array::cast::AsArray;
use arrow_array::types::{
    ArrowPrimitiveType, Float32Type, Float64Type, Int32Type, Int64Type, TimestampMicrosecondType,
    TimestampMillisecondType, TimestampNanosecondType, TimestampSecondType,
};
use arrow_array::{Array, ArrayRef, RecordBatch, StructArray};
use arrow_schema::{DataType, TimeUnit};
use std::ops::Range;

/// A column found at a path, with its ancestors (whose nulls hide it).
#[derive(Clone)]
pub(super) struct Column<'a> {
    name: String,
    array: &'a ArrayRef,
    parents: Vec<&'a StructArray>,
}

/// Looks up `path` (`["action", "tool"]`) in `batch`; `None` when absent.
pub(super) fn column<'a>(batch: &'a RecordBatch, path: &[&str]) -> Option<Column<'a>> {
    let (first, rest) = path.split_first()?;
    let mut col = Column {
        name: (*first).to_owned(),
        array: batch.column_by_name(first)?,
        parents: Vec::new(),
    };
    for part in rest {
        col = col.child(part).ok().flatten()?;
    }
    Some(col)
}

impl<'a> Column<'a> {
    fn mismatch(&self, expected: &'static str) -> FileErrorKind {
        FileErrorKind::Column {
            column: self.name.clone(),
            expected,
            found: self.array.data_type().clone(),
        }
    }

    /// The struct field `name` of this (struct) column; `Ok(None)` when absent.
    pub(super) fn child(&self, name: &str) -> Result<Option<Column<'a>>, FileErrorKind> {
        let Some(s) = self.array.as_struct_opt() else {
            return Err(self.mismatch("struct"));
        };
        let mut parents = self.parents.clone();
        parents.push(s);
        Ok(s.column_by_name(name).map(|array| Column {
            name: format!("{}.{name}", self.name),
            array,
            parents,
        }))
    }

    fn valid(&self, row: usize) -> bool {
        self.array.is_valid(row) && self.parents.iter().all(|p| p.is_valid(row))
    }

    /// Strings (`Utf8`, `LargeUtf8`, `Utf8View`).
    pub(super) fn strings(&self) -> Result<Strings<'a>, FileErrorKind> {
        let kind = match self.array.data_type() {
            DataType::Utf8 => StrKind::Small,
            DataType::LargeUtf8 => StrKind::Large,
            DataType::Utf8View => StrKind::View,
            _ => return Err(self.mismatch("string")),
        };
        Ok(Strings {
            col: self.clone(),
            kind,
        })
    }

    /// Integers (`Int32`, `Int64`) as `i64`.
    pub(super) fn ints(&self) -> Result<Ints<'a>, FileErrorKind> {
        match self.array.data_type() {
            DataType::Int32 | DataType::Int64 => Ok(Ints(self.clone())),
            _ => Err(self.mismatch("integer")),
        }
    }

    /// Floats (`Float32`, `Float64`) as `f64`.
    pub(super) fn floats(&self) -> Result<Floats<'a>, FileErrorKind> {
        match self.array.data_type() {
            DataType::Float32 | DataType::Float64 => Ok(Floats(self.clone())),
            _ => Err(self.mismatch("float")),
        }
    }

    /// Booleans.
    pub(super) fn bools(&self) -> Result<Bools<'a>, FileErrorKind> {
        match self.array.data_type() {
            DataType::Boolean => Ok(Bools(self.clone())),
            _ => Err(self.mismatch("boolean")),
        }
    }

    /// Timestamps of any unit, as microseconds since the epoch.
    pub(super) fn micros(&self) -> Result<Micros<'a>, FileErrorKind> {
        match self.array.data_type() {
            DataType::Timestamp(unit, _) => Ok(Micros(self.clone(), *unit)),
            DataType::Int64 => Ok(Micros(self.clone(), TimeUnit::Microsecond)),
            _ => Err(self.mismatch("timestamp")),
        }
    }

    /// A list (`List`, `LargeList`) of structs.
    pub(super) fn struct_list(&self) -> Result<StructList<'a>, FileErrorKind> {
        let (offsets, items) = self.list()?;
        if items.array.as_struct_opt().is_none() {
            return Err(self.mismatch("list of structs"));
        }
        Ok(StructList {
            col: self.clone(),
            offsets,
            items,
        })
    }

    /// A list of strings.
    pub(super) fn string_list(&self) -> Result<StringList<'a>, FileErrorKind> {
        let (offsets, items) = self.list()?;
        Ok(StringList {
            col: self.clone(),
            offsets,
            items: items.strings()?,
        })
    }

    /// A list's offsets (widened to `i64`) and its items as a column.
    fn list(&self) -> Result<(Vec<i64>, Column<'a>), FileErrorKind> {
        let (offsets, values): (Vec<i64>, &ArrayRef) =
            if let Some(l) = self.array.as_list_opt::<i32>() {
                (
                    l.value_offsets().iter().map(|&o| i64::from(o)).collect(),
                    l.values(),
                )
            } else if let Some(l) = self.array.as_list_opt::<i64>() {
                (l.value_offsets().to_vec(), l.values())
            } else {
                return Err(self.mismatch("list"));
            };
        let items = Column {
            name: format!("{}[]", self.name),
            array: values,
            parents: Vec::new(),
        };
        Ok((offsets, items))
    }

    /// The value at `row` of a column of `Wide` or `Narrow` numbers, widened;
    /// `None` when null.
    fn number<Wide, Narrow>(&self, row: usize) -> Option<Wide::Native>
    where
        Wide: ArrowPrimitiveType,
        Narrow: ArrowPrimitiveType,
        Wide::Native: From<Narrow::Native>,
    {
        if !self.valid(row) {
            return None;
        }
        let a = self.array;
        if let Some(a) = a.as_primitive_opt::<Wide>() {
            Some(a.value(row))
        } else {
            a.as_primitive_opt::<Narrow>()
                .map(|a| Wide::Native::from(a.value(row)))
        }
    }
}

#[derive(Clone, Copy)]
enum StrKind {
    Small,
    Large,
    View,
}

/// A string column.
pub(super) struct Strings<'a> {
    col: Column<'a>,
    kind: StrKind,
}

impl Strings<'_> {
    /// The value at `row`, `None` when null.
    pub(super) fn get(&self, row: usize) -> Option<String> {
        if !self.col.valid(row) {
            return None;
        }
        let a = self.col.array;
        Some(
            match self.kind {
                StrKind::Small => a.as_string::<i32>().value(row),
                StrKind::Large => a.as_string::<i64>().value(row),
                StrKind::View => a.as_string_view().value(row),
            }
            .to_owned(),
        )
    }
}

/// An integer column.
pub(super) struct Ints<'a>(Column<'a>);

impl Ints<'_> {
    /// The value at `row`, `None` when null.
    pub(super) fn get(&self, row: usize) -> Option<i64> {
        self.0.number::<Int64Type, Int32Type>(row)
    }
}

/// A float column.
pub(super) struct Floats<'a>(Column<'a>);

impl Floats<'_> {
    /// The value at `row`, `None` when null.
    pub(super) fn get(&self, row: usize) -> Option<f64> {
        self.0.number::<Float64Type, Float32Type>(row)
    }
}

/// A boolean column.
pub(super) struct Bools<'a>(Column<'a>);

impl Bools<'_> {
    /// The value at `row`, `None` when null.
    pub(super) fn get(&self, row: usize) -> Option<bool> {
        self.0
            .valid(row)
            .then(|| self.0.array.as_boolean_opt().map(|a| a.value(row)))
            .flatten()
    }
}

/// A timestamp column, read as microseconds.
pub(super) struct Micros<'a>(Column<'a>, TimeUnit);

impl Micros<'_> {
    /// The value at `row` in microseconds since the epoch, `None` when null.
    pub(super) fn get(&self, row: usize) -> Option<i64> {
        if !self.0.valid(row) {
            return None;
        }
        let a = self.0.array;
        match self.1 {
            TimeUnit::Second => a
                .as_primitive_opt::<TimestampSecondType>()
                .map(|a| a.value(row).saturating_mul(1_000_000)),
            TimeUnit::Millisecond => a
                .as_primitive_opt::<TimestampMillisecondType>()
                .map(|a| a.value(row).saturating_mul(1_000)),
            TimeUnit::Microsecond => a
                .as_primitive_opt::<TimestampMicrosecondType>()
                .map(|a| a.value(row))
                .or_else(|| a.as_primitive_opt::<Int64Type>().map(|a| a.value(row))),
            TimeUnit::Nanosecond => a
                .as_primitive_opt::<TimestampNanosecondType>()
                .map(|a| a.value(row).div_euclid(1_000)),
        }
    }
}

fn range(offsets: &[i64], row: usize) -> Range<usize> {
    let at = |i: usize| {
        offsets
            .get(i)
            .and_then(|&o| usize::try_from(o).ok())
            .unwrap_or(0)
    };
    at(row)..at(row + 1).max(at(row))
}

/// A list-of-structs column.
pub(super) struct StructList<'a> {
    col: Column<'a>,
    offsets: Vec<i64>,
    items: Column<'a>,
}

impl<'a> StructList<'a> {
    /// The item indices of `row`'s list, `None` when the list is null.
    pub(super) fn get(&self, row: usize) -> Option<Range<usize>> {
        self.col.valid(row).then(|| range(&self.offsets, row))
    }

    /// The items' field `name` (a column indexed by item), `None` when absent.
    pub(super) fn field(&self, name: &str) -> Result<Option<Column<'a>>, FileErrorKind> {
        self.items.child(name)
    }
}

/// A list-of-strings column.
pub(super) struct StringList<'a> {
    col: Column<'a>,
    offsets: Vec<i64>,
    items: Strings<'a>,
}

impl StringList<'_> {
    /// `row`'s list (null items skipped), `None` when the list is null.
    pub(super) fn get(&self, row: usize) -> Option<Vec<String>> {
        self.col.valid(row).then(|| {
            range(&self.offsets, row)
                .filter_map(|i| self.items.get(i))
                .collect()
        })
    }
}
