//! The texts of notifications, per template and language.

use std::time::Duration;

use super::{Locale, Template};

/// A notification made into words.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendered {
    /// Email subject line.
    pub subject: String,
    /// Plain-text body (the whole SMS, for text messages).
    pub text: String,
}

/// Why a notification cannot be rendered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("template {0:?} needs a code and the message has none")]
pub struct MissingCode(pub Template);

/// The text of `template` in `locale`, or `None` for [`Template::Nothing`];
/// `code_ttl` is stated in code messages.
pub fn render(
    template: Template,
    locale: Locale,
    code: Option<&str>,
    code_ttl: Duration,
) -> Result<Option<Rendered>, MissingCode> {
    let minutes = code_ttl.as_secs().div_ceil(60).max(1);
    let code = || code.ok_or(MissingCode(template));
    let (subject, text) = match (template, locale) {
        (Template::Nothing, _) => return Ok(None),
        (Template::VerifyCode, Locale::En) => (
            "Your sign-up code".to_owned(),
            format!(
                "Your sign-up code is {}. It is valid for {minutes} minutes. If you did not ask for it, ignore this message.",
                code()?
            ),
        ),
        (Template::VerifyCode, Locale::Ru) => (
            "Код для регистрации".to_owned(),
            format!(
                "Ваш код для регистрации: {}. Он действует {minutes} мин. Если вы его не запрашивали, просто проигнорируйте это сообщение.",
                code()?
            ),
        ),
        (Template::ResetPassword, Locale::En) => (
            "Your password reset code".to_owned(),
            format!(
                "Your password reset code is {}. It is valid for {minutes} minutes. If you did not ask to reset your password, ignore this message: your password stays as it is.",
                code()?
            ),
        ),
        (Template::ResetPassword, Locale::Ru) => (
            "Код для сброса пароля".to_owned(),
            format!(
                "Ваш код для сброса пароля: {}. Он действует {minutes} мин. Если вы не просили сбросить пароль, проигнорируйте это сообщение: пароль останется прежним.",
                code()?
            ),
        ),
        (Template::PasswordChanged, Locale::En) => (
            "Your password was changed".to_owned(),
            "The password of your account was just changed and your other sessions were ended. If this was not you, reset your password now.".to_owned(),
        ),
        (Template::PasswordChanged, Locale::Ru) => (
            "Ваш пароль изменён".to_owned(),
            "Пароль вашей учётной записи только что изменён, остальные сеансы завершены. Если это были не вы, немедленно сбросьте пароль.".to_owned(),
        ),
        (Template::AccountExists, Locale::En) => (
            "You already have an account".to_owned(),
            "Someone tried to sign up with this address, but it already has an account. If it was you, log in or reset your password instead. If not, ignore this message.".to_owned(),
        ),
        (Template::AccountExists, Locale::Ru) => (
            "У вас уже есть учётная запись".to_owned(),
            "Кто-то пытался зарегистрироваться с этим адресом, но учётная запись для него уже есть. Если это были вы, войдите или сбросьте пароль. Если нет, проигнорируйте это сообщение.".to_owned(),
        ),
    };
    Ok(Some(Rendered { subject, text }))
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEN_MINUTES: Duration = Duration::from_secs(600);

    #[test]
    fn every_template_has_both_languages() {
        for template in [
            Template::VerifyCode,
            Template::ResetPassword,
            Template::PasswordChanged,
            Template::AccountExists,
        ] {
            let en = render(template, Locale::En, Some("012345"), TEN_MINUTES)
                .expect("renders")
                .expect("has a text");
            let ru = render(template, Locale::Ru, Some("012345"), TEN_MINUTES)
                .expect("renders")
                .expect("has a text");
            assert_ne!(en, ru);
            assert!(ru.text.chars().any(|c| ('а'..='я').contains(&c)));
        }
    }

    #[test]
    fn code_templates_carry_the_code_and_its_lifetime() {
        let text = render(
            Template::VerifyCode,
            Locale::En,
            Some("012345"),
            TEN_MINUTES,
        )
        .expect("renders")
        .expect("has a text")
        .text;
        assert!(
            text.contains("012345") && text.contains("10 minutes"),
            "{text}"
        );
        assert_eq!(
            render(Template::ResetPassword, Locale::Ru, None, TEN_MINUTES),
            Err(MissingCode(Template::ResetPassword))
        );
    }

    #[test]
    fn nothing_has_no_text() {
        assert_eq!(
            render(Template::Nothing, Locale::En, None, TEN_MINUTES),
            Ok(None)
        );
    }
}
