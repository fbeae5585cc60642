//! Fencing tokens: each document row counts its owners. An owner appends
//! only while the row still has its token, so an app server that lost its
//! lease (paused, partitioned) can never write again.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table("documents")
                    .add_column(big_integer("fence").default(0))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(Table::alter().table("documents").drop_column("fence").to_owned())
            .await
    }
}
