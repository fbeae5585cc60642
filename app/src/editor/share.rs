//! The owner's share dialog: who has access and how, adding people by
//! email address, share links (made, shown once, revoked).

use leptos::prelude::*;
use shared::api::{color_class, Role, Sharing};

use crate::server::{get_sharing, CreateLink, RevokeLink, ShareWith, Unshare};

/// The dialog for document `id`; `close` is its open/closed switch.
#[component]
pub fn SharePanel(id: String, close: RwSignal<bool>) -> impl IntoView {
    let share = ServerAction::<ShareWith>::new();
    let unshare = ServerAction::<Unshare>::new();
    let create_link = ServerAction::<CreateLink>::new();
    let revoke = ServerAction::<RevokeLink>::new();
    let sharing = {
        let id = id.clone();
        Resource::new(
            move || {
                (
                    share.version().get(),
                    unshare.version().get(),
                    create_link.version().get(),
                    revoke.version().get(),
                )
            },
            move |_| get_sharing(id.clone()),
        )
    };
    let error = move || {
        [
            share.value().get().and_then(Result::err),
            unshare.value().get().and_then(Result::err),
            create_link.value().get().and_then(Result::err),
            revoke.value().get().and_then(Result::err),
        ]
        .into_iter()
        .flatten()
        .next()
        .map(|e| {
            e.to_string()
                .trim_start_matches("error running server function: ")
                .to_owned()
        })
    };
    // A new link's address is shown once: only its digest is stored.
    let new_link = move || {
        create_link
            .value()
            .get()
            .and_then(Result::ok)
            .and_then(|link| link.path)
            .map(|path| format!("{}{path}", origin()))
    };
    let (id_add, id_link) = (id.clone(), id.clone());
    view! {
        <aside class="share card" data-testid="share-panel" aria-label="Share">
            <header class="share-head">
                <h2>"Share"</h2>
                <button class="link" on:click=move |_| close.set(false)>"Close"</button>
            </header>
            {move || error().map(|e| view! { <p class="error" role="alert" data-testid="share-error">{e}</p> })}
            <ActionForm action=share attr:class="inline">
                <input type="hidden" name="id" value=id_add/>
                <input
                    type="email"
                    name="email"
                    required
                    placeholder="Email address of an account"
                    aria-label="Email address"
                    data-testid="share-email"
                />
                <RoleSelect name="role" testid="share-role"/>
                <button type="submit" data-testid="share-add">"Add"</button>
            </ActionForm>
            <Transition fallback=|| view! { <p class="muted">"Loading…"</p> }>
                {move || {
                    sharing
                        .get()
                        .map(|result| match result {
                            Ok(sharing) => view! { <Members sharing id=id.clone() unshare revoke/> }.into_any(),
                            Err(e) => view! { <p class="error">{e.to_string()}</p> }.into_any(),
                        })
                }}
            </Transition>
            <h3>"Share link"</h3>
            <ActionForm action=create_link attr:class="inline">
                <input type="hidden" name="id" value=id_link/>
                <RoleSelect name="role" testid="link-role"/>
                <button type="submit" data-testid="create-link">"Create link"</button>
            </ActionForm>
            {move || {
                new_link()
                    .map(|url| {
                        view! {
                            <p class="new-link">
                                "Anyone signed in who opens this link gets the role: "
                                <input type="text" readonly value=url aria-label="Share link" data-testid="link-url"/>
                            </p>
                        }
                    })
            }}
        </aside>
    }
}

#[component]
fn RoleSelect(name: &'static str, testid: &'static str) -> impl IntoView {
    view! {
        <select name=name aria-label="Role" data-testid=testid>
            <option value="editor">"Can edit"</option>
            <option value="viewer">"Can view"</option>
        </select>
    }
}

#[component]
fn Members(
    sharing: Sharing,
    id: String,
    unshare: ServerAction<Unshare>,
    revoke: ServerAction<RevokeLink>,
) -> impl IntoView {
    let members = sharing
        .members
        .into_iter()
        .map(|member| {
            let id = id.clone();
            let user = member.user.id.clone();
            let removable = member.role != Role::Owner;
            view! {
                <li data-testid="member">
                    <span class=format!("chip {}", color_class(&member.user.color))>{member.user.name.clone()}</span>
                    " " <span class="muted">{member.user.email.clone()}</span> " "
                    <span class=format!("role role-{}", member.role.name())>{member.role.name()}</span>
                    {member.via_link.is_some().then(|| view! { <span class="muted">" (by link)"</span> })}
                    {removable
                        .then(|| {
                            view! {
                                <ActionForm action=unshare attr:class="inline">
                                    <input type="hidden" name="id" value=id/>
                                    <input type="hidden" name="user" value=user/>
                                    <button type="submit" class="link danger" data-testid="unshare">"Remove"</button>
                                </ActionForm>
                            }
                        })}
                </li>
            }
        })
        .collect_view();
    let links = sharing
        .links
        .into_iter()
        .map(|link| {
            let id = id.clone();
            view! {
                <li data-testid="link">
                    "Link for " <span class=format!("role role-{}", link.role.name())>{link.role.name()}</span>
                    <ActionForm action=revoke attr:class="inline">
                        <input type="hidden" name="id" value=id/>
                        <input type="hidden" name="link" value=link.id.clone()/>
                        <button type="submit" class="link danger" data-testid="revoke-link">"Revoke"</button>
                    </ActionForm>
                </li>
            }
        })
        .collect_view();
    view! {
        <h3>"People with access"</h3>
        <ul class="members" data-testid="members">{members}</ul>
        <ul class="links" data-testid="links">{links}</ul>
    }
}

/// This page's origin (`https://host`), for showing full link addresses.
fn origin() -> String {
    #[cfg(feature = "hydrate")]
    {
        window().location().origin().unwrap_or_default()
    }
    #[cfg(not(feature = "hydrate"))]
    {
        String::new()
    }
}
