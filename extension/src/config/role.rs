//! The role every call assumes (`PARAMETERS_SECRETS_EXTENSION_ROLE_ARN`): configuration the upstream reads, declared
//! here so that configuration imports nothing from the upstream.

/// The role to assume for every call (`PARAMETERS_SECRETS_EXTENSION_ROLE_ARN`), for secrets shared from another
/// account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AssumeRole {
    /// The role's ARN.
    pub arn: String,
    /// The external id the role's trust policy asks for, if any.
    pub external_id: Option<String>,
}
