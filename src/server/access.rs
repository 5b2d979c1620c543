//! Who may view a chat (`can_view_chat`), with production's `open-direct-chats` defect
//! (ARCHITECTURE.md) fixed.

use crate::store::{ChatAccessFacts, Parties, User};

/// The permission that lets a contractor member view the chats of the contractor's offers.
pub const MANAGE_ORDERS: &str = "manage_orders";

pub fn can_view_chat(user: &User, facts: &ChatAccessFacts) -> bool {
    if facts.viewer_is_participant {
        return true;
    }
    if let Some(order) = &facts.order {
        // Order chats: customer, assignee, any member of the contractor, or an admin.
        return user.is_admin() || is_party(user, order) || order.viewer_permissions.is_some();
    }
    if let Some(offer) = &facts.offer {
        // Offer chats: customer, assignee, or a contractor member with manage_orders; admins
        // pass that permission check.
        return is_party(user, offer)
            || (offer.contractor_id.is_some() && user.is_admin())
            || offer
                .viewer_permissions
                .as_ref()
                .is_some_and(|p| p.iter().any(|p| p == MANAGE_ORDERS));
    }
    // Direct and group chats: participants only. (Production lets any logged-in user in:
    // `open-direct-chats`.)
    false
}

fn is_party(user: &User, parties: &Parties) -> bool {
    parties.customer_id == Some(user.user_id) || parties.assigned_id == Some(user.user_id)
}
