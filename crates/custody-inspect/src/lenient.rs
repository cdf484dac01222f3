//! Lenient, allocation-light reads for the few fields taken out of large JSON
//! documents: a value of an unexpected shape is skipped (read as "absent") instead
//! of failing the whole document, and strings are borrowed when they hold no
//! escapes.

use serde::de::{self, Deserialize, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use std::borrow::Cow;
use std::fmt;

/// Visitor methods that read every non-string scalar as `Default::default()`.
macro_rules! default_for_scalars {
    () => {
        fn visit_bool<E: ::serde::de::Error>(self, _: bool) -> Result<Self::Value, E> {
            Ok(Default::default())
        }
        fn visit_i64<E: ::serde::de::Error>(self, _: i64) -> Result<Self::Value, E> {
            Ok(Default::default())
        }
        fn visit_u64<E: ::serde::de::Error>(self, _: u64) -> Result<Self::Value, E> {
            Ok(Default::default())
        }
        fn visit_f64<E: ::serde::de::Error>(self, _: f64) -> Result<Self::Value, E> {
            Ok(Default::default())
        }
        fn visit_unit<E: ::serde::de::Error>(self) -> Result<Self::Value, E> {
            Ok(Default::default())
        }
        fn visit_none<E: ::serde::de::Error>(self) -> Result<Self::Value, E> {
            Ok(Default::default())
        }
    };
}
pub(crate) use default_for_scalars;

/// A lenient visitor's `expecting`, and the default for a scalar or a string
/// (the shapes a visitor that reads only objects or lists does not read).
macro_rules! lenient_defaults {
    () => {
        fn expecting(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
            f.write_str("any JSON value")
        }

        $crate::lenient::default_for_scalars!();

        fn visit_str<E: ::serde::de::Error>(self, _: &str) -> Result<Self::Value, E> {
            Ok(Default::default())
        }
    };
}
pub(crate) use lenient_defaults;

/// Implements `Deserialize` for `$ty`, read leniently as an object: starting
/// from `$start`, each member is handed to `$member`, with its key as `$key` (a
/// `Cow<str>`, borrowed unless the key has an escape: see [`Key`]), the map as
/// `$map` and the value being built as `$out`; `$member` reads the member's value
/// or skips it. Anything but an object reads as `Default::default()`.
macro_rules! lenient_object {
    ($de:lifetime, $ty:ty, $start:expr, |$out:ident, $key:ident, $map:ident| $member:block) => {
        impl<$de> ::serde::Deserialize<$de> for $ty {
            fn deserialize<D: ::serde::Deserializer<$de>>(d: D) -> Result<Self, D::Error> {
                struct V;
                impl<$de> ::serde::de::Visitor<$de> for V {
                    type Value = $ty;

                    $crate::lenient::lenient_defaults!();

                    fn visit_seq<A: ::serde::de::SeqAccess<$de>>(
                        self,
                        seq: A,
                    ) -> Result<$ty, A::Error> {
                        $crate::lenient::skip_seq(seq).map(|()| Default::default())
                    }

                    fn visit_map<A: ::serde::de::MapAccess<$de>>(
                        self,
                        mut $map: A,
                    ) -> Result<$ty, A::Error> {
                        let mut $out: $ty = $start;
                        while let Some($crate::lenient::Key($key)) =
                            $map.next_key::<$crate::lenient::Key<$de>>()?
                            $member
                        Ok($out)
                    }
                }
                d.deserialize_any(V)
            }
        }
    };
}
pub(crate) use lenient_object;

/// An object key, borrowed when it has no escapes. (serde's own `Cow<str>`
/// always copies: every key of every object read would be an allocation.)
pub(crate) struct Key<'de>(pub(crate) Cow<'de, str>);

impl<'de> Deserialize<'de> for Key<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct KeyVisitor;
        impl<'de> Visitor<'de> for KeyVisitor {
            type Value = Key<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an object key")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Owned(v.to_owned())))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Owned(v)))
            }
        }
        d.deserialize_str(KeyVisitor)
    }
}

/// Consumes the rest of a sequence.
pub(crate) fn skip_seq<'de, A: SeqAccess<'de>>(mut seq: A) -> Result<(), A::Error> {
    while seq.next_element::<IgnoredAny>()?.is_some() {}
    Ok(())
}

/// Consumes the rest of a map.
pub(crate) fn skip_map<'de, A: MapAccess<'de>>(mut map: A) -> Result<(), A::Error> {
    while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
    Ok(())
}

/// A JSON string, borrowed when it has no escapes; `None` for any other value.
#[derive(Debug, Default)]
pub(crate) struct Str<'a>(pub(crate) Option<Cow<'a, str>>);

impl<'a> Str<'a> {
    pub(crate) fn as_deref(&self) -> Option<&str> {
        self.0.as_deref()
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for Str<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Str<'de>;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("any JSON value")
            }

            default_for_scalars!();

            fn visit_borrowed_str<E: de::Error>(self, s: &'de str) -> Result<Self::Value, E> {
                Ok(Str(Some(Cow::Borrowed(s))))
            }

            fn visit_str<E: de::Error>(self, s: &str) -> Result<Self::Value, E> {
                Ok(Str(Some(Cow::Owned(s.to_owned()))))
            }

            fn visit_string<E: de::Error>(self, s: String) -> Result<Self::Value, E> {
                Ok(Str(Some(Cow::Owned(s))))
            }

            fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Self::Value, A::Error> {
                skip_seq(seq).map(|()| Str(None))
            }

            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
                skip_map(map).map(|()| Str(None))
            }
        }
        d.deserialize_any(V)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_borrowed_when_unescaped_and_other_values_absent() {
        let s: Str<'_> = serde_json::from_str(r#""plain""#).expect("json");
        assert!(matches!(s.0, Some(Cow::Borrowed("plain"))));
        let s: Str<'_> = serde_json::from_str(r#""a\"b""#).expect("json");
        assert!(matches!(s.0, Some(Cow::Owned(ref o)) if o == "a\"b"));
        for other in [
            "1",
            "-1",
            "2.5",
            "true",
            "null",
            "[1,[2]]",
            r#"{"a":{"b":1}}"#,
        ] {
            let s: Str<'_> = serde_json::from_str(other).expect("json");
            assert!(s.0.is_none(), "{other}");
        }
        assert!(serde_json::from_str::<Str<'_>>("[1,").is_err());
    }
}
