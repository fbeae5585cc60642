//! Queries on accounts: users, sessions, document members, share links.

use sea_orm::sea_query::OnConflict;
use sea_orm::{ActiveValue::Set, ColumnTrait, EntityTrait, QueryFilter, QueryOrder, TransactionTrait};
use shared::api::{LinkView, MemberView, Role, UserView};

use super::entities::{document, member, session, share_link, user};
use super::{meta, now_ms, DocumentMeta, Store};
use crate::error::Error;

/// A user as stored, with the password hash.
#[derive(Clone, Debug)]
pub struct UserRow {
    pub view: UserView,
    pub password_hash: String,
}

fn view(row: user::Model) -> UserRow {
    UserRow {
        view: UserView {
            id: row.id,
            name: row.name,
            color: row.color,
            email: row.email,
        },
        password_hash: row.password_hash,
    }
}

fn role(name: &str) -> Result<Role, Error> {
    Role::from_name(name).ok_or_else(|| Error::Corrupt(format!("role {name:?}")))
}

impl Store {
    /// Creates a user; `Ok(None)` if the email is taken.
    pub async fn create_user(&self, user: &UserView, password_hash: &str) -> Result<Option<()>, Error> {
        let inserted = user::Entity::insert(user::ActiveModel {
            id: Set(user.id.clone()),
            email: Set(user.email.clone()),
            name: Set(user.name.clone()),
            color: Set(user.color.clone()),
            password_hash: Set(password_hash.to_owned()),
            created_at: Set(now_ms()),
        })
        .on_conflict(OnConflict::column(user::Column::Email).do_nothing().to_owned())
        .exec_without_returning(&self.db)
        .await?;
        Ok((inserted == 1).then_some(()))
    }

    pub async fn user_by_email(&self, email: &str) -> Result<Option<UserRow>, Error> {
        Ok(user::Entity::find()
            .filter(user::Column::Email.eq(email))
            .one(&self.db)
            .await?
            .map(view))
    }

    pub async fn user_by_id(&self, id: &str) -> Result<Option<UserRow>, Error> {
        Ok(user::Entity::find_by_id(id.to_owned()).one(&self.db).await?.map(view))
    }

    pub async fn create_session(&self, token_hash: &str, user_id: &str, expires_at: i64) -> Result<(), Error> {
        session::Entity::insert(session::ActiveModel {
            token_hash: Set(token_hash.to_owned()),
            user_id: Set(user_id.to_owned()),
            created_at: Set(now_ms()),
            expires_at: Set(expires_at),
        })
        .exec_without_returning(&self.db)
        .await?;
        Ok(())
    }

    /// The user of an unexpired session, and when the session expires.
    pub async fn session_user(&self, token_hash: &str) -> Result<Option<(UserView, i64)>, Error> {
        let Some(session) = session::Entity::find_by_id(token_hash.to_owned()).one(&self.db).await? else {
            return Ok(None);
        };
        if session.expires_at <= now_ms() {
            return Ok(None);
        }
        Ok(self
            .user_by_id(&session.user_id)
            .await?
            .map(|u| (u.view, session.expires_at)))
    }

    pub async fn delete_session(&self, token_hash: &str) -> Result<(), Error> {
        session::Entity::delete_by_id(token_hash.to_owned())
            .exec(&self.db)
            .await?;
        Ok(())
    }

    /// Removes expired sessions; returns how many.
    pub async fn delete_expired_sessions(&self) -> Result<u64, Error> {
        let result = session::Entity::delete_many()
            .filter(session::Column::ExpiresAt.lte(now_ms()))
            .exec(&self.db)
            .await?;
        Ok(result.rows_affected)
    }

    /// A user's role on a document, if any.
    pub async fn role(&self, document_id: &str, user_id: &str) -> Result<Option<Role>, Error> {
        member::Entity::find_by_id((document_id.to_owned(), user_id.to_owned()))
            .one(&self.db)
            .await?
            .map(|m| role(&m.role))
            .transpose()
    }

    /// Gives a user a role on a document (replacing any other).
    pub async fn set_role(
        &self,
        document_id: &str,
        user_id: &str,
        role: Role,
        via_link: Option<&str>,
    ) -> Result<(), Error> {
        member::Entity::insert(member::ActiveModel {
            document_id: Set(document_id.to_owned()),
            user_id: Set(user_id.to_owned()),
            role: Set(role.name().to_owned()),
            via_link: Set(via_link.map(str::to_owned)),
            created_at: Set(now_ms()),
        })
        .on_conflict(
            OnConflict::columns([member::Column::DocumentId, member::Column::UserId])
                .update_columns([member::Column::Role, member::Column::ViaLink])
                .to_owned(),
        )
        .exec_without_returning(&self.db)
        .await?;
        Ok(())
    }

    /// Takes a user's role away; false if they had none.
    pub async fn remove_member(&self, document_id: &str, user_id: &str) -> Result<bool, Error> {
        let result = member::Entity::delete_by_id((document_id.to_owned(), user_id.to_owned()))
            .exec(&self.db)
            .await?;
        Ok(result.rows_affected > 0)
    }

    /// A document's members with their accounts.
    pub async fn members(&self, document_id: &str) -> Result<Vec<MemberView>, Error> {
        let rows = member::Entity::find()
            .filter(member::Column::DocumentId.eq(document_id))
            .order_by_asc(member::Column::CreatedAt)
            .all(&self.db)
            .await?;
        let mut members = Vec::with_capacity(rows.len());
        for row in rows {
            if let Some(user) = self.user_by_id(&row.user_id).await? {
                members.push(MemberView {
                    user: user.view,
                    role: role(&row.role)?,
                    via_link: row.via_link,
                });
            }
        }
        Ok(members)
    }

    /// The documents a user may open, most recently changed first, with the role.
    pub async fn documents_of(&self, user_id: &str, limit: u64) -> Result<Vec<(DocumentMeta, Role)>, Error> {
        let memberships = member::Entity::find()
            .filter(member::Column::UserId.eq(user_id))
            .all(&self.db)
            .await?;
        let mut roles = std::collections::HashMap::new();
        for m in memberships {
            roles.insert(m.document_id, role(&m.role)?);
        }
        let ids: Vec<String> = roles.keys().cloned().collect();
        let mut out = Vec::new();
        for chunk in ids.chunks(500) {
            let rows = self
                .find_documents()
                .filter(document::Column::Id.is_in(chunk.iter().cloned()))
                .all(&self.db)
                .await?;
            for row in rows {
                let role = roles[&row.id];
                out.push((meta(row)?, role));
            }
        }
        out.sort_by_key(|d| std::cmp::Reverse(d.0.updated_at));
        out.truncate(limit as usize);
        Ok(out)
    }

    pub async fn create_link(
        &self,
        id: &str,
        token_hash: &str,
        document_id: &str,
        role: Role,
        by: &str,
    ) -> Result<LinkView, Error> {
        let now = now_ms();
        share_link::Entity::insert(share_link::ActiveModel {
            id: Set(id.to_owned()),
            token_hash: Set(token_hash.to_owned()),
            document_id: Set(document_id.to_owned()),
            role: Set(role.name().to_owned()),
            created_by: Set(by.to_owned()),
            created_at: Set(now),
        })
        .exec_without_returning(&self.db)
        .await?;
        Ok(LinkView {
            id: id.to_owned(),
            role,
            created_at: now,
            path: None,
        })
    }

    /// The document and role a link's token grants, if it is live.
    pub async fn link_by_token(&self, token_hash: &str) -> Result<Option<(String, String, Role)>, Error> {
        share_link::Entity::find()
            .filter(share_link::Column::TokenHash.eq(token_hash))
            .one(&self.db)
            .await?
            .map(|l| Ok((l.id, l.document_id, role(&l.role)?)))
            .transpose()
    }

    pub async fn links(&self, document_id: &str) -> Result<Vec<LinkView>, Error> {
        share_link::Entity::find()
            .filter(share_link::Column::DocumentId.eq(document_id))
            .order_by_asc(share_link::Column::CreatedAt)
            .all(&self.db)
            .await?
            .into_iter()
            .map(|l| {
                Ok(LinkView {
                    id: l.id,
                    role: role(&l.role)?,
                    created_at: l.created_at,
                    path: None,
                })
            })
            .collect()
    }

    /// Revokes a link and the roles it granted; returns the users who lost
    /// theirs (`None` if there is no such link on the document).
    pub async fn revoke_link(&self, document_id: &str, link_id: &str) -> Result<Option<Vec<String>>, Error> {
        let txn = self.db.begin().await?;
        let deleted = share_link::Entity::delete_many()
            .filter(share_link::Column::Id.eq(link_id))
            .filter(share_link::Column::DocumentId.eq(document_id))
            .exec(&txn)
            .await?;
        if deleted.rows_affected == 0 {
            return Ok(None);
        }
        let granted: Vec<String> = member::Entity::find()
            .filter(member::Column::DocumentId.eq(document_id))
            .filter(member::Column::ViaLink.eq(link_id))
            .all(&txn)
            .await?
            .into_iter()
            .map(|m| m.user_id)
            .collect();
        member::Entity::delete_many()
            .filter(member::Column::DocumentId.eq(document_id))
            .filter(member::Column::ViaLink.eq(link_id))
            .exec(&txn)
            .await?;
        txn.commit().await?;
        Ok(Some(granted))
    }
}
