"""What tests share: real daemons, repositories, fake servers speaking real protocols."""
