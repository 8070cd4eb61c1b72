//! What a caller may name: the region of an ARN (AWS's region form only), role ARNs.

use super::QueryError;

/// The region of an ARN (`arn:<partition>:<service>:<region>:...`); `None` for anything else.
pub fn arn_region(id: &str) -> Option<&str> {
    let rest = id.strip_prefix("arn:")?;
    let mut parts = rest.splitn(4, ':');
    let (_partition, _service, region) = (parts.next()?, parts.next()?, parts.next()?);
    (parts.next().is_some() && !region.is_empty()).then_some(region)
}

/// Whether `arn` is an IAM role's ARN: `arn:<partition>:iam::<12-digit account>:role/<path and name>`, the name of
/// IAM's characters (letters, digits, `+=,.@_-`, and `/` in the path), at most 2048 characters.
pub fn is_role_arn(arn: &str) -> bool {
    let mut parts = arn.splitn(6, ':');
    let (Some("arn"), Some(partition), Some("iam"), Some(""), Some(account), Some(resource)) = (
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
    ) else {
        return false;
    };
    let name = resource.strip_prefix("role/").unwrap_or_default();
    arn.len() <= 2048
        && matches!(
            partition,
            "aws" | "aws-cn" | "aws-us-gov" | "aws-iso" | "aws-iso-b" | "aws-eusc"
        )
        && account.len() == 12
        && account.bytes().all(|b| b.is_ascii_digit())
        && !name.is_empty()
        && !name.ends_with('/')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"+=,.@_-/".contains(&b))
}

/// Whether `region` has AWS's region form: lowercase letters in dash-separated labels, the last one a number
/// (`us-east-1`, `us-gov-west-1`, `cn-north-1`, `eusc-de-east-1`), at most 32 characters. A region named in an ARN
/// builds clients of its own, so only this form is let through (the clients themselves are few and bounded too).
pub fn is_region(region: &str) -> bool {
    let mut labels = region.split('-');
    let last = labels.next_back().unwrap_or_default();
    let letters: Vec<&str> = labels.collect();
    region.len() <= 32
        && letters.len() >= 2
        && letters
            .iter()
            .all(|l| !l.is_empty() && l.bytes().all(|b| b.is_ascii_lowercase()))
        && !last.is_empty()
        && last.len() <= 3
        && last.bytes().all(|b| b.is_ascii_digit())
}

/// An id that is an ARN must name its region in AWS's form ([`is_region`]); a name (or an ARN without a region) goes
/// to the home region.
pub(super) fn check_region(name: &'static str, id: &str) -> Result<(), QueryError> {
    match arn_region(id) {
        Some(region) if !is_region(region) => Err(QueryError::Invalid {
            name,
            expected: "a name or an ARN whose region has AWS's form: lowercase dash-separated labels ending in a \
                       number, like us-east-1",
        }),
        _ => Ok(()),
    }
}
