"""Prize pools: how a campaign's pool is split among its players (`split`, pure), its
settlement and its delivery to the loyalty system."""
