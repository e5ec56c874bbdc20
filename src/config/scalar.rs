//! How scalars that YAML reads as numbers or booleans are taken. Deserializing a merged value is
//! strict (a `true` is no string), which is right for most keys; these say where a number is
//! plainly meant as text (a variable `port: 2222`, a probe `run: true`) and where a boolean is
//! a mistake worth its own words (a device switched on with `rng: true`).

use serde::de::{self, Deserializer, Visitor};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::fmt;

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
                Ok(Text(v.to_string()))
            }
        }
        d.deserialize_any(V)
    }
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
