//! Accounts in the page: the sign-in and sign-up pages, and the header's
//! user menu.
//!
//! The forms are plain HTML forms posted to `/api/auth/…`, which answer
//! with a redirect: they work before (and without) the WebAssembly, and the
//! session cookie is set by the server alone (it is `HttpOnly`).

use leptos::prelude::*;
use leptos_router::hooks::use_query_map;
use shared::api::{color_class, UserView, MAX_NAME_CHARS, MIN_PASSWORD_CHARS};

/// The signed-in user, as the whole page shares it.
pub type CurrentUser = Resource<Result<Option<UserView>, ServerFnError>>;

/// What an error code in the query string means.
fn error_message(code: &str) -> &'static str {
    match code {
        "invalid" => "That email address and password do not match an account.",
        "throttled" => "Too many failed attempts. Wait a few minutes and try again.",
        "exists" => "An account with that email address exists. Sign in instead.",
        "input" => "Check the fields: a valid email address, a name, and a password of at least 8 characters.",
        _ => "Something went wrong. Try again.",
    }
}

/// The `next` path of the query string, if it is a local path.
fn next_path() -> impl Fn() -> String {
    let query = use_query_map();
    move || {
        query
            .read()
            .get("next")
            .filter(|n| n.starts_with('/') && !n.starts_with("//"))
            .unwrap_or_else(|| "/".into())
    }
}

#[component]
fn FormError() -> impl IntoView {
    let query = use_query_map();
    move || {
        query.read().get("error").map(|code| {
            view! {
                <p class="error" role="alert" data-testid="auth-error">
                    {error_message(&code)}
                </p>
            }
        })
    }
}

/// `/sign-in`.
#[component]
pub fn SignInPage() -> impl IntoView {
    let next = next_path();
    let next_for_link = next_path();
    view! {
        <section class="card narrow">
            <h1>"Sign in"</h1>
            <FormError/>
            <form method="post" action="/api/auth/sign-in" class="stacked">
                <input type="hidden" name="next" prop:value=next/>
                <label>
                    "Email" <input type="email" name="email" required autocomplete="username" data-testid="email"/>
                </label>
                <label>
                    "Password"
                    <input
                        type="password"
                        name="password"
                        required
                        autocomplete="current-password"
                        data-testid="password"
                    />
                </label>
                <button type="submit" data-testid="sign-in">"Sign in"</button>
            </form>
            <p class="muted">
                "No account yet? "
                <a href=move || format!("/sign-up?next={}", next_for_link()) rel="external">"Sign up"</a>
            </p>
        </section>
    }
}

/// `/sign-up`.
#[component]
pub fn SignUpPage() -> impl IntoView {
    let next = next_path();
    let next_for_link = next_path();
    view! {
        <section class="card narrow">
            <h1>"Create an account"</h1>
            <FormError/>
            <form method="post" action="/api/auth/sign-up" class="stacked">
                <input type="hidden" name="next" prop:value=next/>
                <label>
                    "Email" <input type="email" name="email" required autocomplete="username" data-testid="email"/>
                </label>
                <label>
                    "Your name, as collaborators see it"
                    <input
                        type="text"
                        name="name"
                        required
                        maxlength=MAX_NAME_CHARS
                        autocomplete="nickname"
                        data-testid="name"
                    />
                </label>
                <label>
                    "Password"
                    <input
                        type="password"
                        name="password"
                        required
                        minlength=MIN_PASSWORD_CHARS
                        autocomplete="new-password"
                        data-testid="password"
                    />
                </label>
                <button type="submit" data-testid="sign-up">"Create account"</button>
            </form>
            <p class="muted">
                "Have an account? "
                <a href=move || format!("/sign-in?next={}", next_for_link()) rel="external">"Sign in"</a>
            </p>
        </section>
    }
}

/// The header's right side: who is signed in, and sign out; or the links
/// to sign in and up.
#[component]
pub fn UserMenu() -> impl IntoView {
    let user = expect_context::<CurrentUser>();
    view! {
        <Transition fallback=|| ()>
            {move || {
                user.get()
                    .map(|result| match result {
                        Ok(Some(user)) => {
                            view! {
                                <div class="user-menu">
                                    <span class=format!("me chip {}", color_class(&user.color)) data-testid="me">
                                        {user.name.clone()}
                                    </span>
                                    <form method="post" action="/api/auth/sign-out">
                                        <button type="submit" class="link" data-testid="sign-out">
                                            "Sign out"
                                        </button>
                                    </form>
                                </div>
                            }
                                .into_any()
                        }
                        _ => {
                            view! {
                                <div class="user-menu">
                                    <a href="/sign-in" rel="external" data-testid="sign-in-link">"Sign in"</a>
                                    <a href="/sign-up" rel="external" class="button">"Sign up"</a>
                                </div>
                            }
                                .into_any()
                        }
                    })
            }}
        </Transition>
    }
}
