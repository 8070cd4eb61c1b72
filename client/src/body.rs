//! The response bodies, one type each, used by both sides: the extension serializes them, a client deserializes them.
//!
//! Parts:
//! - [`GetSecretValueBody`]: `GET /secretsmanager/get`, in the AWS extension's shape (PascalCase, null fields kept,
//!   dates as RFC 3339 text, `SecretBinary` as base64, `"ResultMetadata":{}`);
//! - [`GetParameterBody`] and [`Parameter`]: `GET /systemsmanager/parameters/get`, `{"Parameter":{...},"ResultMetadata":{}}`;
//! - [`ErrorBody`]: every failure, in the style of AWS errors, `{"__type":"ResourceNotFoundException","message":"..."}`;
//! - (ours) [`BatchGetSecretValueBody`] and [`GetParametersBody`]: the batch routes, in BatchGetSecretValue's and
//!   GetParameters' shapes, each id's failure a [`BatchError`];
//! - [`SecretText`]: a field that holds a secret.
//!
//! The types borrow (`Cow` and [`SecretText::borrowed`]), so the extension writes a body straight from the SDK's output
//! without another copy of the secret; a client gets them owned (`'static`), and its secret fields are
//! [`SecretString`]s, wiped when dropped. A secret-holding type's `Debug` prints `[REDACTED]` in place of the value;
//! none of them derives it. Deserializing is lenient, as a client of a remote API should be: unknown fields are
//! ignored, and a missing field is `None` (or empty).

use std::borrow::Cow;
use std::fmt;

use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A string that holds a secret: a `SecretString` or a `SecretBinary` (base64), or a parameter's `Value`.
///
/// It is borrowed where the extension serializes one, and owned (a [`SecretString`], zeroized on drop) where a client
/// has read one. `Debug` redacts it; there is no `Display`. Read it with [`ExposeSecret::expose_secret`], which makes
/// every use easy to find.
pub struct SecretText<'a>(Repr<'a>);

enum Repr<'a> {
    Borrowed(&'a str),
    Owned(SecretString),
}

impl<'a> SecretText<'a> {
    /// Borrows `value`, for serializing it without a copy.
    pub fn borrowed(value: &'a str) -> Self {
        Self(Repr::Borrowed(value))
    }

    /// The value as a [`SecretString`]: moved when it is owned, copied when it is borrowed.
    pub fn into_secret(self) -> SecretString {
        match self.0 {
            Repr::Borrowed(s) => SecretString::from(s),
            Repr::Owned(s) => s,
        }
    }

    /// An owned value, for keeping beyond what it borrows.
    pub fn into_owned(self) -> SecretText<'static> {
        SecretText(Repr::Owned(self.into_secret()))
    }
}

impl ExposeSecret<str> for SecretText<'_> {
    fn expose_secret(&self) -> &str {
        match &self.0 {
            Repr::Borrowed(s) => s,
            Repr::Owned(s) => s.expose_secret(),
        }
    }
}

impl From<SecretString> for SecretText<'static> {
    fn from(value: SecretString) -> Self {
        Self(Repr::Owned(value))
    }
}

/// Takes ownership of `value` without a copy (when its capacity is its length, as a serializer's or an encoder's
/// exact-size output is); it is wiped when dropped.
impl From<String> for SecretText<'static> {
    fn from(value: String) -> Self {
        Self(Repr::Owned(SecretString::from(value)))
    }
}

impl Clone for SecretText<'_> {
    fn clone(&self) -> Self {
        match &self.0 {
            Repr::Borrowed(s) => Self(Repr::Borrowed(s)),
            Repr::Owned(s) => Self(Repr::Owned(s.clone())),
        }
    }
}

impl PartialEq for SecretText<'_> {
    fn eq(&self, other: &Self) -> bool {
        self.expose_secret() == other.expose_secret()
    }
}

impl Eq for SecretText<'_> {}

impl fmt::Debug for SecretText<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretText([REDACTED])")
    }
}

impl Serialize for SecretText<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.expose_secret())
    }
}

impl<'de> Deserialize<'de> for SecretText<'_> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        // serde_json hands a string over as `&str`, and `SecretString` copies it into a box of the exact size, so no
        // reallocation leaves a copy behind. (An escaped string passes through serde_json's scratch buffer first,
        // which is not ours to wipe.)
        SecretString::deserialize(deserializer).map(|s| Self(Repr::Owned(s)))
    }
}

/// `"ResultMetadata":{}`, as the AWS extension writes it. Whatever an answer puts in it is ignored.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResultMetadata {}

/// The body of `GET /secretsmanager/get`: GetSecretValue's answer, in the AWS extension's shape.
///
/// Fields are in the order the AWS extension writes them, and `None` is written as `null`: existing clients parse this
/// text. A text secret has [`secret_string`](Self::secret_string) and a null
/// [`secret_binary`](Self::secret_binary); a binary one the reverse, in base64.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct GetSecretValueBody<'a> {
    /// The secret's ARN.
    #[serde(rename = "ARN")]
    pub arn: Option<Cow<'a, str>>,
    /// When this version was created: RFC 3339 in UTC with milliseconds, e.g. `2022-11-16T08:22:40.499Z`.
    pub created_date: Option<Cow<'a, str>>,
    /// The secret's name.
    pub name: Option<Cow<'a, str>>,
    /// A binary secret, in base64.
    pub secret_binary: Option<SecretText<'a>>,
    /// A text secret (for a database, the RDS JSON).
    pub secret_string: Option<SecretText<'a>>,
    /// This version's id.
    pub version_id: Option<Cow<'a, str>>,
    /// This version's staging labels, e.g. `["AWSCURRENT"]`.
    pub version_stages: Option<Cow<'a, [String]>>,
    /// Always `{}`.
    #[serde(default)]
    pub result_metadata: ResultMetadata,
}

impl GetSecretValueBody<'_> {
    /// The `SecretString`, taken out of the body (a binary secret has none).
    pub fn into_secret_string(self) -> Option<SecretString> {
        self.secret_string.map(SecretText::into_secret)
    }
}

impl fmt::Debug for GetSecretValueBody<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GetSecretValueBody")
            .field("arn", &self.arn)
            .field("created_date", &self.created_date)
            .field("name", &self.name)
            .field("secret_binary", &self.secret_binary)
            .field("secret_string", &self.secret_string)
            .field("version_id", &self.version_id)
            .field("version_stages", &self.version_stages)
            .finish_non_exhaustive()
    }
}

/// The body of `GET /systemsmanager/parameters/get`: GetParameter's answer, in the AWS extension's shape.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct GetParameterBody<'a> {
    /// The parameter.
    pub parameter: Option<Parameter<'a>>,
    /// Always `{}`.
    #[serde(default)]
    pub result_metadata: ResultMetadata,
}

impl GetParameterBody<'_> {
    /// The parameter's `Value`, taken out of the body.
    pub fn into_value(self) -> Option<SecretString> {
        self.parameter
            .and_then(|p| p.value)
            .map(SecretText::into_secret)
    }
}

impl fmt::Debug for GetParameterBody<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GetParameterBody")
            .field("parameter", &self.parameter)
            .finish_non_exhaustive()
    }
}

/// One SSM parameter, as GetParameter's `Parameter` holds it.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Parameter<'a> {
    /// The parameter's ARN.
    #[serde(rename = "ARN")]
    pub arn: Option<Cow<'a, str>>,
    /// `text`, or `aws:ec2:image`.
    pub data_type: Option<Cow<'a, str>>,
    /// When it last changed: RFC 3339 in UTC with milliseconds.
    pub last_modified_date: Option<Cow<'a, str>>,
    /// Its name.
    pub name: Option<Cow<'a, str>>,
    /// The `:version` or `:label` the name was asked with, if any.
    pub selector: Option<Cow<'a, str>>,
    /// For a parameter that references a secret, the secret's details.
    pub source_result: Option<Cow<'a, str>>,
    /// `String`, `StringList` or `SecureString`.
    pub r#type: Option<Cow<'a, str>>,
    /// The value (decrypted, for a `SecureString` asked `withDecryption=true`). Held as a secret whatever the type:
    /// a `String` parameter may hold one too.
    pub value: Option<SecretText<'a>>,
    /// Its version number.
    #[serde(default)]
    pub version: i64,
}

impl fmt::Debug for Parameter<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Parameter")
            .field("arn", &self.arn)
            .field("data_type", &self.data_type)
            .field("last_modified_date", &self.last_modified_date)
            .field("name", &self.name)
            .field("selector", &self.selector)
            .field("type", &self.r#type)
            .field("value", &self.value)
            .field("version", &self.version)
            .finish_non_exhaustive()
    }
}

/// The body of every failure: `{"__type":"ResourceNotFoundException","message":"..."}`.
///
/// By contract neither field carries a secret value: `__type` is an AWS error code (or one of ours), and `message` is
/// AWS's own sentence or ours.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody<'a> {
    /// The error code: Secrets Manager's or SSM's (`ResourceNotFoundException`, `ParameterNotFound`,
    /// `AccessDeniedException`...), or ours for a request the extension refused itself.
    #[serde(rename = "__type", default)]
    pub kind: Cow<'a, str>,
    /// What happened, in words.
    #[serde(default)]
    pub message: Cow<'a, str>,
}

/// (ours) The body of `GET /secretsmanager/batch` (without `field=`): BatchGetSecretValue's shape,
/// `{"SecretValues":[...],"Errors":[...]}`.
///
/// The extension writes one entry per id asked, in the order asked: a value in `SecretValues` (in the shape of
/// `/secretsmanager/get`'s answer), or a failure in `Errors`.
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct BatchGetSecretValueBody<'a> {
    /// The values found, in the order their ids were asked.
    #[serde(default)]
    pub secret_values: Vec<GetSecretValueBody<'a>>,
    /// The ids that failed, each with its error.
    #[serde(default)]
    pub errors: Vec<BatchError<'a>>,
}

impl fmt::Debug for BatchGetSecretValueBody<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Each value's own Debug redacts its secret.
        f.debug_struct("BatchGetSecretValueBody")
            .field("secret_values", &self.secret_values)
            .field("errors", &self.errors)
            .finish()
    }
}

/// (ours) The body of `GET /systemsmanager/parameters/batch` (without `field=`): GetParameters' shape,
/// `{"Parameters":[...],"InvalidParameters":[...]}`, and `"Errors":[...]` for failures other than not found.
///
/// The extension writes one entry per name asked, in the order asked: a parameter in `Parameters`, a name SSM does not
/// know in `InvalidParameters`, any other failure (denied, throttled) in `Errors`.
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct GetParametersBody<'a> {
    /// The parameters found, in the order their names were asked.
    #[serde(default)]
    pub parameters: Vec<Parameter<'a>>,
    /// The names SSM does not know, as they were asked.
    #[serde(default)]
    pub invalid_parameters: Vec<Cow<'a, str>>,
    /// The names that failed otherwise, each with its error.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<BatchError<'a>>,
}

impl fmt::Debug for GetParametersBody<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GetParametersBody")
            .field("parameters", &self.parameters)
            .field("invalid_parameters", &self.invalid_parameters)
            .field("errors", &self.errors)
            .finish()
    }
}

/// One id's failure in a batch body: `{"SecretId":"...","ErrorCode":"...","Message":"..."}`. It carries no value.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct BatchError<'a> {
    /// The id (or parameter name) as it was asked.
    #[serde(default)]
    pub secret_id: Cow<'a, str>,
    /// The error code: the upstream's (`ResourceNotFoundException`, `AccessDeniedException`...) or ours.
    #[serde(default)]
    pub error_code: Cow<'a, str>,
    /// What happened, in words (AWS's sentence or ours, never a value).
    #[serde(default)]
    pub message: Cow<'a, str>,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The extension's own test of its body (`secret_body_has_the_aws_shape`), from these types.
    const SECRET_TEXT: &str =
        "{\"ARN\":\"arn:aws:secretsmanager:us-east-1:123456789012:secret:db-AbCdEf\",\
         \"CreatedDate\":\"2022-11-16T08:22:40.499Z\",\"Name\":\"db\",\"SecretBinary\":null,\
         \"SecretString\":\"{\\\"password\\\":\\\"p\\\"}\",\"VersionId\":\"v1\",\
         \"VersionStages\":[\"AWSCURRENT\"],\"ResultMetadata\":{}}";

    fn borrowed_secret<'a>(stages: &'a [String], secret: &'a str) -> GetSecretValueBody<'a> {
        GetSecretValueBody {
            arn: Some("arn:aws:secretsmanager:us-east-1:123456789012:secret:db-AbCdEf".into()),
            created_date: Some("2022-11-16T08:22:40.499Z".into()),
            name: Some("db".into()),
            secret_binary: None,
            secret_string: Some(SecretText::borrowed(secret)),
            version_id: Some("v1".into()),
            version_stages: Some(Cow::Borrowed(stages)),
            result_metadata: ResultMetadata {},
        }
    }

    #[test]
    fn the_secret_body_is_the_aws_extensions_text_and_reads_back() {
        let stages = ["AWSCURRENT".to_owned()];
        let written = borrowed_secret(&stages, "{\"password\":\"p\"}");
        let text = serde_json::to_string(&written).expect("serializes");
        assert_eq!(text, SECRET_TEXT);
        let read: GetSecretValueBody<'static> = serde_json::from_str(&text).expect("parses");
        assert_eq!(read, written);
        assert_eq!(
            read.into_secret_string().expect("a string").expose_secret(),
            "{\"password\":\"p\"}"
        );
    }

    #[test]
    fn the_parameter_body_is_the_aws_extensions_text_and_reads_back() {
        let written = GetParameterBody {
            parameter: Some(Parameter {
                arn: Some("arn:aws:ssm:us-east-1:123456789012:parameter/app/x".into()),
                data_type: Some("text".into()),
                last_modified_date: Some("2022-11-16T08:22:40.499Z".into()),
                name: Some("/app/x".into()),
                selector: None,
                source_result: None,
                r#type: Some("SecureString".into()),
                value: Some(SecretText::borrowed("s3cr3t")),
                version: 3,
            }),
            result_metadata: ResultMetadata {},
        };
        let text = serde_json::to_string(&written).expect("serializes");
        assert_eq!(
            text,
            "{\"Parameter\":{\"ARN\":\"arn:aws:ssm:us-east-1:123456789012:parameter/app/x\",\"DataType\":\"text\",\
             \"LastModifiedDate\":\"2022-11-16T08:22:40.499Z\",\"Name\":\"/app/x\",\"Selector\":null,\
             \"SourceResult\":null,\"Type\":\"SecureString\",\"Value\":\"s3cr3t\",\"Version\":3},\
             \"ResultMetadata\":{}}"
        );
        let read: GetParameterBody<'static> = serde_json::from_str(&text).expect("parses");
        assert_eq!(read, written);
        assert_eq!(
            read.into_value().expect("a value").expose_secret(),
            "s3cr3t"
        );
    }

    #[test]
    fn reading_is_lenient_about_missing_and_unknown_fields() {
        let read: GetSecretValueBody<'static> = serde_json::from_str(
            r#"{"SecretString":"x","Future":1,"ResultMetadata":{"RequestId":"r"}}"#,
        )
        .expect("parses");
        assert_eq!(read.name, None);
        assert_eq!(read.version_stages, None);
        let read: GetParameterBody<'static> =
            serde_json::from_str(r#"{"Parameter":{"Name":"x"}}"#).expect("parses");
        assert_eq!(read.parameter.as_ref().map(|p| p.version), Some(0));
        assert!(read.into_value().is_none());
    }

    #[test]
    fn the_error_body_has_the_aws_style() {
        let written = ErrorBody {
            kind: "ResourceNotFoundException".into(),
            message: "Secrets Manager can't find the specified secret.".into(),
        };
        let text = serde_json::to_string(&written).expect("serializes");
        assert_eq!(
            text,
            r#"{"__type":"ResourceNotFoundException","message":"Secrets Manager can't find the specified secret."}"#
        );
        assert_eq!(
            serde_json::from_str::<ErrorBody>(&text).expect("parses"),
            written
        );
        assert_eq!(
            serde_json::from_str::<ErrorBody>("{}").expect("parses"),
            ErrorBody::default()
        );
    }

    #[test]
    fn batch_bodies_read_back_in_order_with_their_errors() {
        let text = format!(
            r#"{{"SecretValues":[{SECRET_TEXT}],"Errors":[{{"SecretId":"gone","ErrorCode":"ResourceNotFoundException","Message":"not here"}}]}}"#
        );
        let read: BatchGetSecretValueBody<'static> = serde_json::from_str(&text).expect("parses");
        assert_eq!(read.secret_values.len(), 1);
        assert_eq!(read.secret_values[0].name.as_deref(), Some("db"));
        assert_eq!(read.errors[0].secret_id, "gone");
        assert_eq!(read.errors[0].error_code, "ResourceNotFoundException");
        assert_eq!(
            serde_json::from_str::<BatchGetSecretValueBody>(
                &serde_json::to_string(&read).expect("ser")
            )
            .expect("de"),
            read
        );
        assert!(!format!("{read:?}").contains("password"), "{read:?}");
        assert!(format!("{read:?}").contains("REDACTED"));

        let read: GetParametersBody<'static> = serde_json::from_str(
            r#"{"Parameters":[{"Name":"/a","Value":"hunter2","Version":3}],"InvalidParameters":["/b"],
               "Errors":[{"SecretId":"/c","ErrorCode":"AccessDeniedException","Message":"m"}]}"#,
        )
        .expect("parses");
        assert_eq!(read.parameters[0].name.as_deref(), Some("/a"));
        assert_eq!(read.invalid_parameters, ["/b"]);
        assert_eq!(read.errors[0].error_code, "AccessDeniedException");
        assert!(!format!("{read:?}").contains("hunter2"), "{read:?}");
        // GetParameters' own shape has no Errors; it reads as none.
        let plain: GetParametersBody<'static> =
            serde_json::from_str(r#"{"Parameters":[],"InvalidParameters":[]}"#).expect("parses");
        assert!(plain.errors.is_empty());
        assert_eq!(
            serde_json::to_string(&plain).expect("ser"),
            r#"{"Parameters":[],"InvalidParameters":[]}"#
        );
    }

    #[test]
    fn debug_redacts_every_secret_holding_type() {
        let stages = ["AWSCURRENT".to_owned()];
        let borrowed = borrowed_secret(&stages, "hunter2");
        let mut owned: GetSecretValueBody<'static> =
            serde_json::from_str(&serde_json::to_string(&borrowed).expect("ser")).expect("de");
        owned.secret_binary = Some(SecretText::from("aHVudGVyMg==hunter2".to_owned()));
        let parameter = Parameter {
            arn: None,
            data_type: None,
            last_modified_date: None,
            name: Some("/p".into()),
            selector: None,
            source_result: None,
            r#type: None,
            value: Some(SecretText::borrowed("hunter2")),
            version: 1,
        };
        let parameter_body = GetParameterBody {
            parameter: Some(parameter.clone()),
            result_metadata: ResultMetadata {},
        };
        let texts = [
            format!("{:?}", SecretText::borrowed("hunter2")),
            format!("{:?}", SecretText::from("hunter2".to_owned())),
            format!("{:?}", SecretText::borrowed("hunter2").into_owned()),
            format!("{borrowed:?}"),
            format!("{owned:?}"),
            format!("{parameter:?}"),
            format!("{parameter_body:?}"),
            format!("{:#?}", owned),
        ];
        for text in texts {
            assert!(!text.contains("hunter2"), "{text}");
            assert!(!text.contains("aHVudGVy"), "{text}");
            assert!(text.contains("REDACTED"), "{text}");
        }
        // The fields that are not secret are still there to debug with.
        assert!(format!("{owned:?}").contains("AWSCURRENT"));
    }
}
