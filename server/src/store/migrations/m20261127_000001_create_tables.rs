//! The first schema: documents, snapshots, the op log and rejected changes.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table("documents")
                    .if_not_exists()
                    .col(string("id").primary_key())
                    .col(string("title"))
                    .col(string("policy"))
                    .col(big_integer("head_revision"))
                    .col(big_integer("created_at"))
                    .col(big_integer("updated_at"))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .if_not_exists()
                    .name("documents_by_update")
                    .table("documents")
                    .col("updated_at")
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table("snapshots")
                    .if_not_exists()
                    .col(string("document_id"))
                    .col(big_integer("revision"))
                    .col(text("text"))
                    .col(big_integer("created_at"))
                    .primary_key(Index::create().col("document_id").col("revision"))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table("op_log")
                    .if_not_exists()
                    .col(string("document_id"))
                    .col(big_integer("revision"))
                    .col(big_integer("client_id"))
                    .col(big_integer("seq"))
                    .col(string("author"))
                    .col(text("delta"))
                    .col(big_integer("created_at"))
                    .primary_key(Index::create().col("document_id").col("revision"))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table("rejected_changes")
                    .if_not_exists()
                    .col(big_pk_auto("id"))
                    .col(string("document_id"))
                    .col(big_integer("client_id"))
                    .col(big_integer("seq"))
                    .col(big_integer("base_revision"))
                    .col(big_integer("revision"))
                    .col(string("author"))
                    .col(text("delta"))
                    .col(text("verdict"))
                    .col(big_integer("created_at"))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .if_not_exists()
                    .name("rejected_by_document")
                    .table("rejected_changes")
                    .col("document_id")
                    .col("revision")
                    .to_owned(),
            )
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in ["rejected_changes", "op_log", "snapshots", "documents"] {
            manager.drop_table(Table::drop().table(table).to_owned()).await?;
        }
        Ok(())
    }
}
