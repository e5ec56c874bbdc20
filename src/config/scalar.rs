//! How scalars that YAML reads as numbers or booleans are taken. The merged value is read
//! through [`Lenient`]: wherever text is wanted (a name, a pattern, a user, a map key), a number
//! is its text (`name: 2024`, `machine_type: 440`, `vars: {1: x}`), as the text deserializer
//! that read profiles before took it. A boolean stays strict (`user: true` is an error: `yes` and
//! `true` as text are usually a mistake) except where [`Text`] says a boolean is plainly meant as
//! text too (a variable's value, a shell command `run: true`, `extra_args`, a literal password);
//! and where a boolean is a mistake worth its own words, [`Device`] says so (`rng: true`).

use serde::de::value::{MapDeserializer, SeqDeserializer};
use serde::de::{self, Deserializer, IntoDeserializer, Visitor};
use serde::Deserialize;
use serde_yaml_ng::{Error, Mapping, Number, Value};
use std::collections::BTreeMap;
use std::fmt;

/// A YAML value deserialized with a number taken as its text where text is wanted (a string,
/// a map key, a field name); anything else as `Value` itself deserializes it.
pub struct Lenient(pub Value);

impl IntoDeserializer<'_, Error> for Lenient {
    type Deserializer = Lenient;
    fn into_deserializer(self) -> Lenient {
        self
    }
}

fn visit_seq<'de, V: Visitor<'de>>(seq: Vec<Value>, visitor: V) -> Result<V::Value, Error> {
    let mut de = SeqDeserializer::new(seq.into_iter().map(Lenient));
    let out = visitor.visit_seq(&mut de)?;
    de.end()?;
    Ok(out)
}

fn visit_map<'de, V: Visitor<'de>>(map: Mapping, visitor: V) -> Result<V::Value, Error> {
    let mut de = MapDeserializer::new(map.into_iter().map(|(k, v)| (Lenient(k), Lenient(v))));
    let out = visitor.visit_map(&mut de)?;
    de.end()?;
    Ok(out)
}

macro_rules! forward {
    ($($method:ident)*) => {
        $(fn $method<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
            self.0.$method(visitor)
        })*
    };
}

impl<'de> Deserializer<'de> for Lenient {
    type Error = Error;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        match self.0 {
            Value::Sequence(s) => visit_seq(s, visitor),
            Value::Mapping(m) => visit_map(m, visitor),
            other => other.deserialize_any(visitor),
        }
    }

    fn deserialize_str<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        self.deserialize_string(visitor)
    }

    fn deserialize_string<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        match self.0 {
            Value::Number(n) => visitor.visit_string(n.to_string()),
            other => other.deserialize_string(visitor),
        }
    }

    fn deserialize_identifier<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        self.deserialize_string(visitor)
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        match self.0 {
            Value::Null => visitor.visit_none(),
            other => visitor.visit_some(Lenient(other)),
        }
    }

    fn deserialize_seq<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        match self.0 {
            Value::Sequence(s) => visit_seq(s, visitor),
            Value::Null => visit_seq(Vec::new(), visitor),
            other => other.deserialize_seq(visitor),
        }
    }

    fn deserialize_tuple<V: Visitor<'de>>(self, _: usize, visitor: V) -> Result<V::Value, Error> {
        self.deserialize_seq(visitor)
    }

    fn deserialize_tuple_struct<V: Visitor<'de>>(
        self,
        _: &'static str,
        _: usize,
        visitor: V,
    ) -> Result<V::Value, Error> {
        self.deserialize_seq(visitor)
    }

    fn deserialize_map<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        match self.0 {
            Value::Mapping(m) => visit_map(m, visitor),
            Value::Null => visit_map(Mapping::new(), visitor),
            other => other.deserialize_map(visitor),
        }
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _: &'static str,
        _: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Error> {
        self.deserialize_map(visitor)
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _: &'static str,
        visitor: V,
    ) -> Result<V::Value, Error> {
        visitor.visit_newtype_struct(self)
    }

    fn deserialize_unit_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        visitor: V,
    ) -> Result<V::Value, Error> {
        self.0.deserialize_unit_struct(name, visitor)
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        name: &'static str,
        variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Error> {
        self.0.deserialize_enum(name, variants, visitor)
    }

    forward! {
        deserialize_bool deserialize_i8 deserialize_i16 deserialize_i32 deserialize_i64
        deserialize_i128 deserialize_u8 deserialize_u16 deserialize_u32 deserialize_u64
        deserialize_u128 deserialize_f32 deserialize_f64 deserialize_char deserialize_bytes
        deserialize_byte_buf deserialize_unit deserialize_ignored_any
    }
}

/// Text, also when YAML reads it as a number or a boolean.
pub struct Text(pub String);

impl<'de> Deserialize<'de> for Text {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Text;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a text")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Text, E> {
                Ok(Text(v.to_string()))
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<Text, E> {
                Ok(Text(v.to_string()))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Text, E> {
                Ok(Text(v.to_string()))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Text, E> {
                Ok(Text(v.to_string()))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Text, E> {
                // As YAML writes it back (`1.0`, not `1`).
                Ok(Text(Number::from(v).to_string()))
            }
        }
        d.deserialize_any(V)
    }
}

pub fn text<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    Ok(Text::deserialize(d)?.0)
}

pub fn text_map<'de, D: Deserializer<'de>>(d: D) -> Result<BTreeMap<String, String>, D::Error> {
    let map = BTreeMap::<String, Text>::deserialize(d)?;
    Ok(map.into_iter().map(|(k, v)| (k, v.0)).collect())
}

pub fn text_list<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    let list = Vec::<Text>::deserialize(d)?;
    Ok(list.into_iter().map(|t| t.0).collect())
}

pub fn optional_text<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    Ok(Option::<Text>::deserialize(d)?.map(|t| t.0))
}

/// A QEMU device model (`virtio-rng-pci`): named, never switched on with `true`.
pub struct Device(pub String);

impl<'de> Deserialize<'de> for Device {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Device;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a QEMU device model such as virtio-rng-pci")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Device, E> {
                match v.is_empty() {
                    true => Err(E::custom("an empty device model: name one, as `qemu-system-x86_64 -device help` lists them")),
                    false => Ok(Device(v.to_string())),
                }
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<Device, E> {
                Err(E::custom(format!(
                    "a device is named by its QEMU model, not switched {} with `{v}`: write the model \
                     (e.g. `rng: virtio-rng-pci`, as `qemu-system-x86_64 -device help` lists them), \
                     or leave the key out for no such device",
                    if v { "on" } else { "off" }
                )))
            }
        }
        d.deserialize_any(V)
    }
}

pub fn device<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    Ok(Device::deserialize(d)?.0)
}

pub fn optional_device<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    Ok(Option::<Device>::deserialize(d)?.map(|t| t.0))
}
