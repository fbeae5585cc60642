//! The home page: the documents, newest first; create, rename, delete.

use leptos::prelude::*;
use shared::api::DocumentSummary;

use crate::server::{list_documents, CreateDocument, DeleteDocument, RenameDocument};

/// The list of documents and the form that creates one.
#[component]
pub fn HomePage() -> impl IntoView {
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
            <details class="manage">
                <summary>"Manage"</summary>
                <ActionForm action=rename attr:class="rename">
                    <input type="hidden" name="id" value=rename_id/>
                    <input type="text" name="title" value=doc.title.clone() maxlength="200" aria-label="New title"/>
                    <button type="submit">"Rename"</button>
                </ActionForm>
                <ActionForm action=delete attr:class="delete" on:submit=confirm_delete>
                    <input type="hidden" name="id" value=delete_id/>
                    <button type="submit" class="danger">"Delete"</button>
                </ActionForm>
            </details>
        </li>
    }
}
