//! The home page: signed in, the user's documents, newest first (create,
//! rename, delete, by role); signed out, what the product is and how to
//! get in.

use leptos::prelude::*;
use shared::api::{DocumentSummary, Role};

use crate::account::CurrentUser;
use crate::server::{list_documents, CreateDocument, DeleteDocument, RenameDocument};

/// The documents of the signed-in user, or the way in.
#[component]
pub fn HomePage() -> impl IntoView {
    let user = expect_context::<CurrentUser>();
    view! {
        <Suspense fallback=|| view! { <p class="muted">"Loading…"</p> }>
            {move || {
                user.get()
                    .map(|result| match result {
                        Ok(Some(_)) => view! { <Documents/> }.into_any(),
                        Ok(None) => view! { <Welcome/> }.into_any(),
                        Err(error) => view! { <p class="error">{error.to_string()}</p> }.into_any(),
                    })
            }}
        </Suspense>
    }
}

/// For visitors who are not signed in.
#[component]
fn Welcome() -> impl IntoView {
    let hydrated = RwSignal::new(false);
    Effect::new(move |_| hydrated.set(true));
    view! {
        <section class="card" data-testid="welcome">
            <h1>"Write together, live"</h1>
            <p class="lead">
                "Edit the same document with others in real time. Edits to different lines merge; "
                "when two people change the same line, the first wins and the other edit is kept "
                "for its author to re-apply."
            </p>
            <p>
                <a href="/sign-up" rel="external" class="button" data-testid="welcome-sign-up">"Create an account"</a>
                " or "
                <a href="/sign-in" rel="external">"sign in"</a>
            </p>
            <p class="status" data-testid="hydrated">
                {move || if hydrated.get() { "hydrated" } else { "" }}
            </p>
        </section>
    }
}

/// The signed-in user's documents and the form that creates one.
#[component]
fn Documents() -> impl IntoView {
    let create = ServerAction::<CreateDocument>::new();
    let rename = ServerAction::<RenameDocument>::new();
    let delete = ServerAction::<DeleteDocument>::new();
    let documents = Resource::new(
        move || (create.version().get(), rename.version().get(), delete.version().get()),
        |_| list_documents(),
    );
    let hydrated = RwSignal::new(false);
    Effect::new(move |_| hydrated.set(true));

    view! {
        <section class="card">
            <h1>"Documents"</h1>
            <ActionForm action=create attr:class="create">
                <input type="text" name="title" placeholder="Title of a new document" maxlength="200" aria-label="Title"/>
                <button type="submit" data-testid="create">"New document"</button>
            </ActionForm>
            {move || {
                create
                    .value()
                    .get()
                    .and_then(Result::err)
                    .map(|error| view! { <p class="error" role="alert">{error.to_string()}</p> })
            }}
            <Suspense fallback=|| view! { <p class="muted">"Loading documents…"</p> }>
                {move || {
                    documents
                        .get()
                        .map(|result| match result {
                            Ok(list) if list.is_empty() => {
                                view! { <p class="muted" data-testid="no-documents">"No documents yet."</p> }.into_any()
                            }
                            Ok(list) => {
                                view! {
                                    <ul class="documents" data-testid="documents">
                                        {list
                                            .into_iter()
                                            .map(|doc| view! { <DocumentItem doc rename delete/> })
                                            .collect_view()}
                                    </ul>
                                }
                                    .into_any()
                            }
                            Err(error) => view! { <p class="error">{error.to_string()}</p> }.into_any(),
                        })
                }}
            </Suspense>
            <p class="status" data-testid="hydrated">
                {move || if hydrated.get() { "hydrated" } else { "" }}
            </p>
        </section>
    }
}

#[component]
fn DocumentItem(
    doc: DocumentSummary,
    rename: ServerAction<RenameDocument>,
    delete: ServerAction<DeleteDocument>,
) -> impl IntoView {
    let href = format!("/d/{}", doc.id);
    let (rename_id, delete_id) = (doc.id.clone(), doc.id.clone());
    let confirm_delete = {
        let title = doc.title.clone();
        move |ev: leptos::ev::SubmitEvent| {
            let sure = window()
                .confirm_with_message(&format!("Delete “{title}” and its history?"))
                .unwrap_or(false);
            if !sure {
                ev.prevent_default();
            }
        }
    };
    view! {
        <li class="document" data-testid="document">
            <a href=href data-testid="document-link">{doc.title.clone()}</a>
            <span class="muted">" · revision " {doc.revision.0}</span>
            <span class=format!("role role-{}", doc.role.name()) data-testid="role">{doc.role.name()}</span>
            {(doc.role >= Role::Editor)
                .then(|| {
                    view! {
                        <details class="manage">
                            <summary>"Manage"</summary>
                            <ActionForm action=rename attr:class="rename">
                                <input type="hidden" name="id" value=rename_id/>
                                <input
                                    type="text"
                                    name="title"
                                    value=doc.title.clone()
                                    maxlength="200"
                                    aria-label="New title"
                                />
                                <button type="submit">"Rename"</button>
                            </ActionForm>
                            {(doc.role == Role::Owner)
                                .then(|| {
                                    view! {
                                        <ActionForm action=delete attr:class="delete" on:submit=confirm_delete>
                                            <input type="hidden" name="id" value=delete_id/>
                                            <button type="submit" class="danger">"Delete"</button>
                                        </ActionForm>
                                    }
                                })}
                        </details>
                    }
                })}
        </li>
    }
}
